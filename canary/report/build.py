"""What every page shows, read from the store in one transaction (a consistent snapshot) and
shaped for the templates. Only this module talks to the store; the rest is pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from canary.config.load import LoadedCanary, Project
from canary.config.models import DetectConfig, ModelConfig
from canary.errors import SetupError
from canary.report import data, paths
from canary.report.charts import Chart, Spark
from canary.report.compare import COMPARE_DAYS, Cell, Comparison, add_latency, compare
from canary.report.data import AlertHistory, DayAgg
from canary.report.figures import (
    availability_chart,
    cost_chart,
    latency_chart,
    markers_of,
    pair_latency_chart,
    pass_rate_chart,
    tokens_chart,
    trend,
)
from canary.report.series import (
    DayView,
    active_counts,
    build_days,
    combine,
    content_changes,
    day_range,
    describe,
)
from canary.report.series import served_changes as served_changes_of
from canary.store.alerting import AlertRow, SilenceRow
from canary.store.rows import SampleRow
from canary.store.store import Store

LATEST_FAILURES = 3  # failing transcripts shown per model x canary
SERVED_LOOKBACK_DAYS = 30  # a change on the window's first day is found against the last day before it


@dataclass
class PairPage:
    """One model on one canary."""

    model: ModelConfig
    canary: LoadedCanary
    path: str
    days: list[DayView]
    recent: Cell  # the last COMPARE_DAYS days, current content only
    failures: list[SampleRow]
    hashes: list[tuple[str, date, date]]  # every content hash seen in the window: (hash, first, last day)
    charts: list[Chart] = field(default_factory=list)
    spark: Spark | None = None
    open_alerts: list[AlertRow] = field(default_factory=list)

    @property
    def latest(self) -> DayView | None:
        return next((d for d in reversed(self.days) if d.rate is not None), None)

    @property
    def status(self) -> str:
        latest = self.latest
        if self.open_alerts:
            return "firing"
        if latest is None:
            return "no_data"
        if latest.alarm:
            return "alarm"
        if latest.warming:
            return "not_judged"
        return "below" if latest.below_band else "ok"

    @property
    def warming_text(self) -> str:
        """ "3 of 14 baseline days" while the series has no baseline (not judged yet), else ""."""
        return self.latest.warming_text if self.latest else ""


@dataclass
class ModelPage:
    model: ModelConfig
    path: str
    days: list[DayView]
    pairs: list[PairPage]
    changes: list[tuple[date, str, str]]  # served model / fingerprint / content changes in the window
    served_now: str
    alerts: list[AlertHistory]
    charts: list[Chart] = field(default_factory=list)
    spark: Spark | None = None

    @property
    def open_alerts(self) -> list[AlertRow]:
        return [a.alert for a in self.alerts if a.alert.state == "firing"]

    @property
    def latest(self) -> DayView | None:
        """The newest day with any answered or unavailable sample."""
        return next((d for d in reversed(self.days) if d.counts and d.counts.total), None)

    @property
    def alarms(self) -> list[str]:
        """Series whose paging rule fires on their newest day with data (the overall first)."""
        out = []
        latest = next((d for d in reversed(self.days) if d.rate is not None), None)
        if latest and latest.alarm:
            out.append("all canaries")
        out += [p.canary.id for p in self.pairs if p.latest and p.latest.alarm]
        return out

    @property
    def status(self) -> str:
        """firing (an open alert), alarm (the paging rule fires but no alert is open: `canary
        check` has not judged the day yet), below (under the sigma band), not_judged (no
        baseline yet: never shown as ok), ok, or no_data."""
        if self.open_alerts:
            return "firing"
        if self.latest is None:
            return "no_data"
        if self.alarms:
            return "alarm"
        newest = next((d for d in reversed(self.days) if d.rate is not None), None)
        if newest is not None and newest.warming:
            return "not_judged"
        return "below" if newest is not None and newest.below_band else "ok"

    @property
    def warming_text(self) -> str:
        """ "3 of 14 baseline days" while the overall series has no baseline (not judged yet)."""
        newest = next((d for d in reversed(self.days) if d.rate is not None), None)
        return newest.warming_text if newest else ""


STATUS_ORDER = {"firing": 0, "alarm": 1, "below": 2, "not_judged": 3, "ok": 4, "no_data": 5}


@dataclass
class Site:
    today: date
    window: list[date]
    models: list[ModelPage]
    comparison: Comparison
    alerts: list[AlertHistory]
    silences: list[SilenceRow]
    newest_run: tuple[date, datetime] | None
    project: Project
    store_display: str

    @property
    def pairs(self) -> list[PairPage]:
        return [p for m in self.models for p in m.pairs]

    @property
    def stale(self) -> list[AlertRow]:
        return [a.alert for a in self.alerts if a.alert.model_id == "*" and a.alert.state == "firing"]

    @property
    def overview(self) -> list[ModelPage]:
        """Firing first (most open alerts first), then detector alarms, then the rest in config order."""
        order = {m.model.id: i for i, m in enumerate(self.models)}
        return sorted(
            self.models, key=lambda m: (STATUS_ORDER[m.status], -len(m.open_alerts), order[m.model.id])
        )


def select_models(project: Project, model_ids: Sequence[str]) -> list[ModelConfig]:
    known = {m.id for m in project.config.models}
    unknown = [m for m in model_ids if m not in known]
    if unknown:
        raise SetupError(f"unknown --model {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    wanted = set(model_ids)
    return [m for m in project.config.models if not wanted or m.id in wanted]


def _hashes_seen(per_hash: dict[str, dict[date, DayAgg]], window: list[date]) -> list[tuple[str, date, date]]:
    out = []
    for chash, series in per_hash.items():
        days = [d for d in series if window[0] <= d <= window[-1]]
        if days:
            out.append((chash, min(days), max(days)))
    return sorted(out, key=lambda h: (h[1], h[2]))


def _recent(per_hash: dict[str, dict[date, DayAgg]], chash: str, start: date, end: date) -> Cell:
    total = DayAgg()
    for day, counts in per_hash.get(chash, {}).items():
        if start <= day <= end:
            total = total + counts
    return Cell(total.passes, total.scored, total.output_tokens, total.unavailable)


def lookback_days(detect: DetectConfig) -> int:
    """History the detectors need before a day to judge it exactly as `canary check` did: the
    calibrated rule reads its lagged baseline and CUSUM window (91 days by default), the sigma
    rule its last `window_days` days with data (twice that leaves room for missing days)."""
    return max(
        2 * detect.window_days, detect.baseline_days + detect.baseline_lag_days + detect.cusum_window_days
    )


def build_site(project: Project, store: Store, *, days: int, model_ids: Sequence[str], today: date) -> Site:
    if days < 1:
        raise SetupError(f"--days must be at least 1, not {days}")
    cfg = project.config
    models = select_models(project, model_ids)
    ids = [m.id for m in models]
    canaries = list(project.canaries)
    hashes = {c.id: c.hash for c in canaries}
    window = day_range(today - timedelta(days=days - 1), today)
    history_start = window[0] - timedelta(days=lookback_days(cfg.detect))
    compare_start = max(window[0], today - timedelta(days=COMPARE_DAYS - 1))

    with store.reading() as conn:
        aggregates = data.day_aggregates(conn, ids, history_start, today)
        lat_models = data.daily_latency(conn, ids, window[0], today)
        served = data.served(conn, ids, window[0] - timedelta(days=SERVED_LOOKBACK_DAYS), today)
        failures = data.latest_failures(conn, ids, window[0], today, per_pair=LATEST_FAILURES)
        alerts = data.alert_history(conn, ids)
        silences = data.active_silences(conn, datetime.combine(today, time.min, tzinfo=UTC))
        newest = data.newest_run(conn, today)
        comparison = compare(aggregates, hashes, ids, [c.id for c in canaries], compare_start, today)
        add_latency(comparison, data.window_latency(conn, comparison.pairs(), hashes, compare_start, today))

    detect, signals = cfg.detect, cfg.signals
    pages: list[ModelPage] = []
    for model in models:
        model_alerts = [a for a in alerts if a.alert.model_id == model.id]
        served_days = served.get(model.id, {})
        served_list = served_changes_of(served_days, window)
        changes = list(served_list)
        pairs: list[PairPage] = []
        actives = []
        for canary in canaries:
            per_hash = aggregates.get((model.id, canary.id), {})
            actives.append(active_counts(per_hash))
            pair_changes = [
                (d, "content", f"{old[:8]} -> {new[:8]}") for d, old, new in content_changes(per_hash, window)
            ]
            days_view = build_days(per_hash, window, history_start, detect, signals.max_unavailable)
            pair = PairPage(
                model,
                canary,
                paths.canary_page(model.id, canary.id),
                days_view,
                _recent(per_hash, canary.hash, compare_start, today),
                failures.get((model.id, canary.id), []),
                _hashes_seen(per_hash, window),
                open_alerts=[
                    a.alert for a in model_alerts if a.alert.state == "firing" and a.alert.scope == canary.id
                ],
            )
            markers = markers_of(window, served_list + pair_changes)
            pair.charts = [
                pass_rate_chart(
                    "rate",
                    f"Daily pass rate: {model.id} on {canary.id}",
                    days_view,
                    markers,
                    detect.sigma,
                    detect.window_days,
                ),
                tokens_chart("tokens", days_view, markers),
                pair_latency_chart("latency", days_view, markers),
            ]
            pair.spark = trend(days_view, canary.id)
            changes += [(d, "content", f"{canary.id}: {text}") for d, _, text in pair_changes]
            pairs.append(pair)
        overall = {"*": combine(actives)}
        days_view = build_days(
            overall, window, history_start, detect, signals.max_unavailable, lat_models.get(model.id, {})
        )
        newest_served = max(served_days) if served_days else None
        page = ModelPage(
            model,
            paths.model_page(model.id),
            days_view,
            pairs,
            sorted(changes),
            describe(served_days[newest_served]) if newest_served else "",
            model_alerts,
        )
        markers = markers_of(window, page.changes)
        page.charts = [
            pass_rate_chart(
                "rate",
                f"Daily pass rate: {model.id}, all canaries",
                days_view,
                markers,
                detect.sigma,
                detect.window_days,
            ),
            availability_chart("avail", days_view, markers, signals.max_unavailable),
            tokens_chart("tokens", days_view, markers),
            latency_chart("latency", days_view, markers),
        ]
        if model.price is not None:
            page.charts.append(cost_chart("cost", days_view, markers))
        page.spark = trend(days_view, model.id)
        pages.append(page)

    return Site(today, window, pages, comparison, alerts, silences, newest, project, store_label(store))


def store_label(store: Store) -> str:
    """Which store, without its folder, host or user: a published report should not map the
    machine it was built on."""
    target = store.target
    if target.dialect == "sqlite":
        return f"the SQLite store {target.path.name if target.path else ''}".rstrip()
    return f"the PostgreSQL database {target.url.database or ''}".rstrip()
