"""The report's reads from the store: every query aggregates in SQL.

A year of 20 models x 30 canaries x 5 samples a day is over a million sample rows, so nothing
here iterates over samples in Python: counts, sums and latency quantiles come back one row per
(model, canary, hash, day) or (model, day), and whole transcripts are fetched only for the few
failing samples a page shows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from canary.store.alerting import AlertRow, SilenceRow
from canary.store.rows import SampleRow, sample_from_row
from canary.store.schema import alert_events, alerts, runs, samples, silences

SCORED = ("pass", "fail")
T = TypeVar("T")


@dataclass(frozen=True)
class DayAgg:
    """One (model, canary, content hash, day): the counts every chart and table is built from.

    Quality uses pass/fail only; availability uses pass/fail/unavailable; `errors` (error and
    harness_error) are setup problems, shown but never counted against the model."""

    passes: int = 0
    scored: int = 0
    unavailable: int = 0
    errors: int = 0
    output_tokens: int = 0  # over scored samples: tokens per task
    cost_usd: float = 0.0  # over every sample with a price (as the cost signal counts it)
    priced: int = 0
    latency_sum: float = 0.0  # over scored samples
    latency_max: float | None = None  # the slowest scored sample: a series' p95 while it has <= 20 a day

    @property
    def total(self) -> int:
        return self.scored + self.unavailable

    def __add__(self, other: DayAgg) -> DayAgg:
        return DayAgg(
            self.passes + other.passes,
            self.scored + other.scored,
            self.unavailable + other.unavailable,
            self.errors + other.errors,
            self.output_tokens + other.output_tokens,
            self.cost_usd + other.cost_usd,
            self.priced + other.priced,
            self.latency_sum + other.latency_sum,
            max((v for v in (self.latency_max, other.latency_max) if v is not None), default=None),
        )

    @property
    def latency_mean(self) -> float | None:
        return self.latency_sum / self.scored if self.scored else None


PairKey = tuple[str, str]  # (model_id, canary_id)
PerHash = dict[str, dict[date, DayAgg]]  # canary hash -> day -> counts


@dataclass(frozen=True)
class Quantiles:
    p50: float
    p95: float
    n: int


def _count(cond: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.sum(sa.case((cond, 1), else_=0))


def day_aggregates(
    conn: sa.Connection, model_ids: Collection[str], start: date, end: date
) -> dict[PairKey, PerHash]:
    """Counts per (model, canary) -> hash -> day, for every hash (the report marks edits)."""
    c = samples.c
    scored = c.outcome.in_(SCORED)
    stmt = (
        sa.select(
            c.model_id,
            c.canary_id,
            c.canary_hash,
            c.day,
            _count(c.outcome == "pass"),
            _count(scored),
            _count(c.outcome == "unavailable"),
            _count(c.outcome.in_(("error", "harness_error"))),
            sa.func.sum(sa.case((scored, c.output_tokens), else_=0)),
            sa.func.sum(sa.func.coalesce(c.cost_usd, 0.0)),
            _count(c.cost_usd.is_not(None)),
            sa.func.sum(sa.case((scored, c.latency_s), else_=0.0)),
            sa.func.max(sa.case((scored, c.latency_s))),
        )
        .where(c.model_id.in_(list(model_ids)), c.day.between(start, end))
        .group_by(c.model_id, c.canary_id, c.canary_hash, c.day)
    )
    out: dict[PairKey, PerHash] = defaultdict(lambda: defaultdict(dict))
    for model_id, canary_id, chash, day, p, s, u, e, tok, cost, priced, lat, slowest in conn.execute(
        stmt
    ).all():
        out[(model_id, canary_id)][chash][day] = DayAgg(
            int(p),
            int(s),
            int(u),
            int(e),
            int(tok or 0),
            float(cost or 0.0),
            int(priced),
            float(lat or 0.0),
            None if slowest is None else float(slowest),
        )
    return {k: dict(v) for k, v in out.items()}


def _quantile_stmt(
    group: Sequence[sa.ColumnElement[Any]], where: Sequence[sa.ColumnElement[bool]]
) -> sa.Select:
    """p50, p95 and count of scored latencies per `group`, ranked in SQL with one window.

    Nearest-rank percentiles, the definition the latency signal uses: the p-quantile is the
    smallest value whose cumulative share cume_dist() = (rows <= it) / n reaches p, i.e. the
    value at rank ceil(p * n). One sort per query, on SQLite and PostgreSQL alike."""
    c = samples.c
    share = sa.func.cume_dist().over(partition_by=list(group), order_by=c.latency_s).label("share")
    ranked = sa.select(*group, c.latency_s, share).where(c.outcome.in_(SCORED), *where).subquery()
    keys = [ranked.c[col.name] for col in group]
    return sa.select(
        *keys,
        sa.func.min(sa.case((ranked.c.share >= 0.5, ranked.c.latency_s))),
        sa.func.min(sa.case((ranked.c.share >= 0.95, ranked.c.latency_s))),
        sa.func.count(),
    ).group_by(*keys)


def daily_latency(
    conn: sa.Connection, model_ids: Collection[str], start: date, end: date
) -> dict[str, dict[date, Quantiles]]:
    """p50/p95 latency of each model's scored samples per day, ranked in SQL.

    Per model only: a model x canary series has a handful of samples a day, whose nearest-rank
    p95 is simply the slowest one (DayAgg.latency_max), so it needs no ranking."""
    c = samples.c
    stmt = _quantile_stmt([c.model_id, c.day], [c.model_id.in_(list(model_ids)), c.day.between(start, end)])
    out: dict[str, dict[date, Quantiles]] = defaultdict(dict)
    for model_id, day, p50, p95, n in conn.execute(stmt).all():
        out[model_id][day] = Quantiles(float(p50), float(p95), int(n))
    return dict(out)


def window_latency(
    conn: sa.Connection, pairs: Collection[tuple[str, str]], hashes: dict[str, str], start: date, end: date
) -> dict[str, Quantiles]:
    """p50/p95 per model over a window, pooled over the given (model, canary) pairs' current hashes."""
    if not pairs:
        return {}
    c = samples.c
    models = sorted({m for m, _ in pairs})
    contents = sorted({(cid, hashes[cid]) for _, cid in pairs})
    # A model has rows for a compared canary only if it has a cell for it, so (models x
    # compared contents) selects exactly the pairs' samples.
    where = [
        c.model_id.in_(models),
        sa.tuple_(c.canary_id, c.canary_hash).in_(contents),
        c.day.between(start, end),
    ]
    stmt = _quantile_stmt([c.model_id], where)
    return {m: Quantiles(float(p50), float(p95), int(n)) for m, p50, p95, n in conn.execute(stmt)}


ServedDay = dict[tuple[str | None, str | None], int]  # (served model, fingerprint) -> samples


def served(
    conn: sa.Connection, model_ids: Collection[str], start: date, end: date
) -> dict[str, dict[date, ServedDay]]:
    """What answered each model's scored samples, per day (distinct pairs with their counts)."""
    c = samples.c
    stmt = (
        sa.select(c.model_id, c.day, c.served_model, c.fingerprint, sa.func.count())
        .where(c.model_id.in_(list(model_ids)), c.day.between(start, end), c.outcome.in_(SCORED))
        .group_by(c.model_id, c.day, c.served_model, c.fingerprint)
    )
    out: dict[str, dict[date, ServedDay]] = defaultdict(lambda: defaultdict(dict))
    for model_id, day, name, fp, n in conn.execute(stmt).all():
        out[model_id][day][(name, fp)] = int(n)
    return {m: dict(d) for m, d in out.items()}


def latest_failures(
    conn: sa.Connection, model_ids: Collection[str], start: date, end: date, *, per_pair: int
) -> dict[PairKey, list[SampleRow]]:
    """The newest `per_pair` failing samples of each (model, canary), transcripts included.

    A window function picks the ids, so only the rows shown are read whole."""
    c = samples.c
    rn = (
        sa.func.row_number()
        .over(
            partition_by=[c.model_id, c.canary_id], order_by=[c.day.desc(), c.finished_at.desc(), c.id.desc()]
        )
        .label("rn")
    )
    ranked = (
        sa.select(c.id, rn)
        .where(c.model_id.in_(list(model_ids)), c.day.between(start, end), c.outcome == "fail")
        .subquery()
    )
    ids = [row[0] for row in conn.execute(sa.select(ranked.c.id).where(ranked.c.rn <= per_pair))]
    out: dict[PairKey, list[SampleRow]] = defaultdict(list)
    for chunk in _chunks(ids, 500):
        rows = conn.execute(sa.select(samples).where(c.id.in_(chunk))).mappings()
        for row in rows:
            sample = sample_from_row(row, [])
            out[(sample.model_id, sample.canary_id)].append(sample)
    for rows in out.values():
        rows.sort(key=lambda s: (s.day, s.finished_at, s.id), reverse=True)
    return dict(out)


def _chunks(items: list[T], size: int) -> Iterable[list[T]]:
    """Bounded IN lists (SQLite caps bound parameters)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass(frozen=True)
class AlertHistory:
    alert: AlertRow
    events: list[dict[str, Any]]


def alert_history(conn: sa.Connection, model_ids: Collection[str]) -> list[AlertHistory]:
    """Every alert episode of these models (and the store-wide `stale` ones), newest first."""
    stmt = (
        sa.select(alerts)
        .where(sa.or_(alerts.c.model_id.in_(list(model_ids)), alerts.c.model_id == "*"))
        .order_by(alerts.c.opened_at.desc(), alerts.c.id)
    )
    rows = [AlertRow(**r) for r in conn.execute(stmt).mappings()]
    events: dict[str, list[dict[str, Any]]] = {r.id: [] for r in rows}
    for chunk in _chunks([r.id for r in rows], 500):
        ev = sa.select(alert_events).where(alert_events.c.alert_id.in_(chunk)).order_by(alert_events.c.id)
        for e in conn.execute(ev).mappings():
            events[e["alert_id"]].append(
                {"at": e["at"], "day": e["day"], "event": e["event"], "detail": e["detail"]}
            )
    return [AlertHistory(r, events[r.id]) for r in rows]


def active_silences(conn: sa.Connection, at: datetime) -> list[SilenceRow]:
    rows = conn.execute(
        sa.select(silences).where(silences.c.until > at).order_by(silences.c.until)
    ).mappings()
    return [SilenceRow(**r) for r in rows]


def newest_run(conn: sa.Connection, up_to: date) -> tuple[date, datetime] | None:
    """(day, finished_at) of the newest finished run recorded for a day up to `up_to`."""
    c = runs.c
    row = conn.execute(
        sa.select(c.day, c.finished_at)
        .where(c.status == "finished", c.day <= up_to, c.finished_at.is_not(None))
        .order_by(c.day.desc(), c.finished_at.desc())
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else None
