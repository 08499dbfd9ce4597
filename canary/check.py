"""`canary check`: judge one day, move alerts through their lifecycle, queue and deliver.

Composes store -> detect -> alerts, like canary.pipeline composes the run. Findings are
computed outside any transaction; the transitions and the outbox rows for them are written in
one locked transaction; delivery happens after it commits, so a dead channel never loses an
alert or a result.

The lifecycle only moves forward: a check of a day older than the newest judged or recorded day
(`--as-of` the past, the check that ends a backfilled run) reports that day's findings as history
and changes no alert and notifies nothing (`CheckReport.history_of`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from canary.alerts.config_signal import config_findings
from canary.alerts.findings import ALL, Finding
from canary.alerts.lifecycle import Watched, apply, open_alerts
from canary.alerts.message import AlertEvent, message_to_json
from canary.alerts.outbox import DeliveryReport, deliver_pending, group
from canary.alerts.signals import ModelDay, model_findings, stale
from canary.config.load import Project
from canary.store import alerting as db
from canary.store import modelstatus, series
from canary.store.store import Store

HISTORY_DAYS = 120  # days of daily counts the detectors see


@dataclass
class CheckReport:
    day: date
    now: datetime
    findings: list[Finding] = field(default_factory=list)
    events: list[AlertEvent] = field(default_factory=list)
    message_id: str | None = None
    firing: list[db.AlertRow] = field(default_factory=list)  # open and not silenced: exit 1
    silenced: list[db.AlertRow] = field(default_factory=list)  # open but muted by `canary silence`
    history_of: date | None = None  # set when a later day was already judged: nothing changed
    delivery: DeliveryReport = field(default_factory=DeliveryReport)


def check_clock(day: date | None, now: datetime | None = None) -> tuple[date, datetime]:
    """The day judged and the time it is judged at. Today: the wall clock. A past day
    (`--as-of`, backfills, the demo): the last second of that day, so repeats, silences and
    the dead man's switch behave as they would have on the day."""
    real_now = now or datetime.now(UTC)
    today = real_now.date()
    if day is None or day >= today:
        return (day or today), real_now
    return day, series.end_of_day(day) - timedelta(seconds=1)


def findings_for(project: Project, store: Store, day: date, now: datetime) -> list[Finding]:
    cfg = project.config
    models = cfg.models
    hashes = {c.id: c.hash for c in project.canaries}
    ids = [m.id for m in models]
    history = max(HISTORY_DAYS, cfg.detect.window_days)
    start = day - timedelta(days=history)
    per = series.daily_counts(store, ids, hashes, start, day)
    base_start = day - timedelta(days=cfg.signals.baseline_days)
    lat = series.latencies(store, ids, hashes, base_start, day)
    served = series.served_models(store, ids, base_start - timedelta(days=30), day)
    out: list[Finding] = []
    for model in models:
        md = ModelDay(
            model=model,
            day=day,
            overall=series.overall(per, model.id),
            per_canary={cid: days for (mid, cid), days in per.items() if mid == model.id},
            latencies=lat.get(model.id, {}),
            served=served.get(model.id, {}),
        )
        out += model_findings(md, cfg.detect, cfg.signals, history)
    out += config_findings(models, modelstatus.latest(store, ids, up_to=day))
    out.append(stale(series.last_completed_run(store, up_to=day), now, cfg.signals))
    return out


def not_judged_lines(findings: list[Finding]) -> list[str]:
    """What cannot be judged yet (a new model, a new or edited canary), for people: each
    model-wide signal on its own line ("drifty quality on all canaries: not judged yet: 3 of 14
    baseline days"), then one line for the model's canaries ("drifty 2 canaries (q1, q2): not
    judged yet: 0 of 14 baseline days", the furthest from a baseline)."""
    lines: list[str] = []
    by_model: dict[str, list[Finding]] = {}
    for f in findings:
        if f.warming is not None:
            by_model.setdefault(f.model_id, []).append(f)
    for model_id, found in by_model.items():
        model_wide = [f for f in found if f.scope == ALL]
        canaries = sorted({f.scope for f in found if f.scope != ALL})
        for f in model_wide:
            lines.append(f.summary)
        if canaries:
            have, need = min(f.warming for f in found if f.scope != ALL)  # type: ignore[type-var]
            lines.append(
                f"{model_id} {len(canaries)} canar{'y' if len(canaries) == 1 else 'ies'} "
                f"({', '.join(canaries[:5])}{', …' if len(canaries) > 5 else ''}): not judged yet: "
                f"{have} of {need} baseline days"
            )
    return lines


def run_check(
    project: Project,
    store: Store,
    *,
    as_of: date | None = None,
    now: datetime | None = None,
    deliver: bool = True,
    env: Mapping[str, str] | None = None,
    channels: list | None = None,
    said_gap: bool = False,
) -> CheckReport:
    """Judge the day, move the alert lifecycle and queue one grouped message. `said_gap`: a gap
    notice (canary.gap) was queued just before for the run that ended the gap; it already says
    the canary is back and since when it was not, so the dead man's switch resolving in this
    check is recorded but not sent as a second message about the same incident."""
    from canary.alerts.channels import build_channels

    alerts_cfg = project.config.alerts
    if channels is None:
        channels = build_channels(alerts_cfg, os.environ if env is None else env, base_dir=project.root)
    day, at = check_clock(as_of, now)
    report = CheckReport(day, at)
    report.findings = findings_for(project, store, day, at)
    watched = Watched({m.id for m in project.config.models}, {c.id for c in project.canaries})
    with store.writing() as conn:
        db.lock_for_check(conn)
        newest = db.lifecycle_day(conn)
        if newest is not None and day < newest:
            report.history_of = newest
        else:
            report.events = apply(
                conn,
                report.findings,
                day=day,
                now=at,
                repeat_hours=alerts_cfg.repeat_hours,
                watched=watched,
                report_url=alerts_cfg.report_url,
            )
        notify = [
            e for e in report.events if not (said_gap and e.signal == "stale" and e.event == "resolved")
        ]
        if notify and channels:
            message = group(notify, now=at, report_url=alerts_cfg.report_url)
            db.enqueue(conn, message.id, [c.name for c in channels], message_to_json(message), at)
            report.message_id = message.id
        report.firing, report.silenced = open_alerts(conn, at)
    if deliver and channels:
        report.delivery = deliver_pending(
            store, channels, attempts=alerts_cfg.delivery_attempts, give_up_hours=alerts_cfg.give_up_hours
        )
        if report.delivery.channel_events:  # a channel alert opened or resolved while delivering
            with store.reading() as conn:
                report.firing, report.silenced = open_alerts(conn, at)
    return report
