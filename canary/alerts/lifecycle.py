"""Alert lifecycle: findings in, transitions and the events to notify out.

ok -> firing notifies once; firing -> ok notifies "resolved"; still firing re-notifies after
`repeat_hours`; a silence keeps the alert's state but not its notifications. The lifecycle only
moves forward: a day older than the newest judged or recorded day (a `check --as-of` the past, a
backfilled run) changes nothing and notifies nothing. Runs inside the check transaction (see
canary.store.alerting), so it sees the latest state and writes atomically."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from canary.alerts.findings import ALL, Finding
from canary.alerts.message import AlertEvent
from canary.store import alerting as db


@dataclass(frozen=True)
class Watched:
    """What the project still watches: alerts for anything else are closed quietly."""

    model_ids: Collection[str]
    canary_ids: Collection[str]

    def covers(self, key: tuple[str, str, str]) -> bool:
        model_id, scope, _ = key
        if model_id == ALL:
            return True
        return model_id in self.model_ids and (scope == ALL or scope in self.canary_ids)


def _event(
    alert_id: str, kind: str, f: Finding | db.AlertRow, day: date, report_url: str | None
) -> AlertEvent:
    return AlertEvent(
        alert_id=alert_id,
        event=kind,
        model_id=f.model_id,
        scope="all canaries" if f.scope == ALL else f.scope,
        signal=f.signal,
        summary=f.summary,
        today=f.today,
        baseline=f.baseline,
        detail=f.detail,
        day=day,
        report_url=report_url,
    )


def apply(
    conn: sa.Connection,
    findings: Iterable[Finding],
    *,
    day: date,
    now: datetime,
    repeat_hours: float,
    watched: Watched,
    report_url: str | None = None,
) -> list[AlertEvent]:
    """Write this day's transitions; return the events to notify, in a stable order.
    Nothing at all for a day older than the lifecycle's newest day (see `is_history`)."""
    db.lock_for_check(conn)
    if is_history(conn, day):
        return []
    firing = db.firing_alerts(conn)
    silences = db.active_silences(conn, now)
    events: list[AlertEvent] = []
    repeat = timedelta(hours=repeat_hours)

    def silenced(model_id: str, scope: str) -> bool:
        return any(s.covers(model_id, scope, now) for s in silences)

    for f in findings:
        alert = firing.get(f.key)
        if f.status == "held":
            continue
        if f.status == "firing":
            quiet = silenced(f.model_id, f.scope)
            if alert is None:
                alert_id = db.new_alert(
                    conn,
                    f.key,
                    now=now,
                    day=day,
                    summary=f.summary,
                    today=f.today,
                    baseline=f.baseline,
                    detail=f.detail,
                )
                db.add_event(conn, alert_id, at=now, day=day, event="opened", detail=f.summary)
                notify, last, count, kind = not quiet, None, 0, "firing"
            else:
                alert_id = alert.id
                db.update_alert(
                    conn,
                    alert_id,
                    summary=f.summary,
                    today=f.today,
                    baseline=f.baseline,
                    detail=f.detail,
                    last_day=day,
                )
                last, count = alert.last_notified_at, alert.notify_count
                due = last is None or now - last >= repeat
                notify, kind = (not quiet and due), ("firing" if last is None else "repeat")
            if notify:
                db.update_alert(conn, alert_id, last_notified_at=now, notify_count=count + 1)
                db.add_event(
                    conn,
                    alert_id,
                    at=now,
                    day=day,
                    event="notified" if kind == "firing" else "repeated",
                    detail=f.summary,
                )
                events.append(_event(alert_id, kind, f, day, report_url))
            elif quiet and (alert is None or alert.last_day != day):
                db.add_event(
                    conn, alert_id, at=now, day=day, event="silenced", detail="muted by `canary silence`"
                )
        elif alert is not None:  # ok: recovered. The row keeps the episode's figures while firing;
            # the resolving day's figures go in the event and the "resolved" notification.
            db.update_alert(conn, alert.id, state="resolved", resolved_at=now, resolved_day=day, last_day=day)
            db.add_event(conn, alert.id, at=now, day=day, event="resolved", detail=f.summary)
            if alert.last_notified_at is not None and not silenced(f.model_id, f.scope):
                events.append(_event(alert.id, "resolved", f, day, report_url))
    for key, alert in firing.items():
        if not watched.covers(key):
            db.update_alert(conn, alert.id, state="resolved", resolved_at=now, resolved_day=day)
            db.add_event(
                conn, alert.id, at=now, day=day, event="resolved", detail="no longer watched by canary.yaml"
            )
    return events


def is_history(conn: sa.Connection, day: date) -> bool:
    """True when a later day has already been judged or recorded: `day` only adds history."""
    newest = db.lifecycle_day(conn)
    return newest is not None and day < newest


def still_firing(conn: sa.Connection, now: datetime) -> list[db.AlertRow]:
    """Open alerts that are not silenced: what makes `canary check` exit 1."""
    return open_alerts(conn, now)[0]


def open_alerts(conn: sa.Connection, now: datetime) -> tuple[list[db.AlertRow], list[db.AlertRow]]:
    """Every open alert as (paging, silenced): a silenced alert is still firing, only muted."""
    silences = db.active_silences(conn, now)
    paging, muted = [], []
    for a in db.firing_alerts(conn).values():
        (muted if any(s.covers(a.model_id, a.scope, now) for s in silences) else paging).append(a)
    return paging, muted
