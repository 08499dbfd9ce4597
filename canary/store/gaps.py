"""Store side of gap notices (canary.gap): the completed runs a gap is read from, and the
one-shot `gap` alert row, written with its lifecycle events and its outbox rows in one locked
transaction. The row's id is derived from the gap, so a gap is recorded (and notified) once
however many runs, checks or daemons see it, at the same time or one after another."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from canary.store import alerting as db
from canary.store.schema import alerts, runs
from canary.store.series import end_of_day
from canary.store.store import Store


@dataclass(frozen=True)
class Completed:
    day: date
    at: datetime  # when it completed; a backfill (`--as-of` a past day) at the end of its day


def completed_runs(store: Store) -> list[Completed]:
    """Every finished run, oldest completion first (the same reading as series.last_completed_run)."""
    c = runs.c
    stmt = sa.select(c.day, c.finished_at).where(c.status == "finished", c.finished_at.is_not(None))
    with store.reading() as conn:
        out = [Completed(day, min(finished, end_of_day(day))) for day, finished in conn.execute(stmt)]
    return sorted(out, key=lambda r: r.at)


def record_gap(
    store: Store,
    *,
    alert_id: str,
    day: date,
    now: datetime,
    summary: str,
    today: str,
    baseline: str,
    detail: str,
    message_id: str,
    channels: Iterable[str],
    payload: str,
) -> bool:
    """Write the gap as an alert opened and resolved at once, and queue its message; False (and
    nothing written) when this gap was already recorded."""
    names = list(channels)
    with store.writing() as conn:
        db.lock_for_check(conn)  # serialised with checks and with other gap notices
        if conn.execute(sa.select(alerts.c.id).where(alerts.c.id == alert_id)).first() is not None:
            return False
        conn.execute(
            alerts.insert().values(
                id=alert_id,
                model_id="*",
                scope="*",
                signal="gap",
                state="resolved",
                opened_at=now,
                opened_day=day,
                resolved_at=now,
                resolved_day=day,
                last_notified_at=now if names else None,
                notify_count=1 if names else 0,
                summary=summary,
                today=today,
                baseline=baseline,
                detail=detail,
                last_day=day,
            )
        )
        db.add_event(conn, alert_id, at=now, day=day, event="opened", detail=summary)
        if names:
            db.add_event(conn, alert_id, at=now, day=day, event="notified", detail=summary)
            db.enqueue(conn, message_id, names, payload, now)
        db.add_event(
            conn, alert_id, at=now, day=day, event="resolved", detail="a one-shot notice: nothing stays open"
        )
    return True
