"""Alert state, lifecycle events, silences and the notification outbox in the store.

All transitions of one check happen in one write transaction under a lock (SQLite's write
lock via BEGIN IMMEDIATE; a transaction-scoped advisory lock on PostgreSQL), so two checks at
once cannot both open the same alert or queue the same notification."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from canary.store.schema import alert_events, alerts, notifications, runs, silences
from canary.store.store import Store

CHECK_LOCK_CLASS = 0x63616E61  # "cana": with the schema's hash, serialises alert transitions on PostgreSQL

AlertKey = tuple[str, str, str]  # model_id, scope, signal


@dataclass(frozen=True)
class AlertRow:
    id: str
    model_id: str
    scope: str
    signal: str
    state: str
    opened_at: datetime
    opened_day: date
    resolved_at: datetime | None
    resolved_day: date | None
    last_notified_at: datetime | None
    notify_count: int
    summary: str
    today: str | None
    baseline: str | None
    detail: str
    last_day: date

    @property
    def key(self) -> AlertKey:
        return (self.model_id, self.scope, self.signal)


@dataclass(frozen=True)
class SilenceRow:
    id: int
    model_id: str
    canary_id: str | None
    until: datetime
    reason: str
    created_at: datetime

    def covers(self, model_id: str, scope: str, at: datetime) -> bool:
        return (
            self.model_id == model_id
            and (self.canary_id is None or self.canary_id == scope)
            and at < self.until
        )


@dataclass(frozen=True)
class OutboxRow:
    message_id: str
    channel: str
    payload: str
    status: str
    created_at: datetime
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    next_attempt_at: datetime | None = None  # a temporary failure is not retried before this
    last_attempt_at: datetime | None = None
    first_attempt_at: datetime | None = None


def lock_for_check(conn: sa.Connection) -> None:
    """Hold the check lock until the transaction ends (SQLite already holds its write lock)."""
    if conn.dialect.name == "postgresql":  # scoped to canary's schema, like the run lock
        conn.execute(
            sa.text(
                "SELECT pg_advisory_xact_lock(:k, hashtext(current_database() || '/' || current_schema()))"
            ),
            {"k": CHECK_LOCK_CLASS},
        )


DELIVERY_SIGNALS = ("channel",)  # raised while delivering notifications (canary.alerts.delivery_health)


def lifecycle_day(conn: sa.Connection) -> date | None:
    """The newest day the alert lifecycle may move on from: the newest day any alert was judged
    on, or any run recorded. A check of an earlier day (`--as-of`, a backfilled run) is history:
    it must not reopen, resolve or notify what a later day already settled."""
    # A channel alert is dated by the wall clock of its delivery, not by a judged day: it must not
    # turn a check of the day being caught up (`--as-of`) into history.
    judged = conn.execute(
        sa.select(sa.func.max(alerts.c.last_day)).where(alerts.c.signal.not_in(DELIVERY_SIGNALS))
    ).scalar_one_or_none()
    recorded = conn.execute(sa.select(sa.func.max(runs.c.day))).scalar_one_or_none()
    days = [d for d in (judged, recorded) if d is not None]
    return max(days) if days else None


def firing_alerts(conn: sa.Connection) -> dict[AlertKey, AlertRow]:
    rows = conn.execute(sa.select(alerts).where(alerts.c.state == "firing")).mappings()
    return {(r["model_id"], r["scope"], r["signal"]): AlertRow(**r) for r in rows}


def list_alerts(store: Store, *, include_resolved: bool = False, limit: int = 500) -> list[AlertRow]:
    stmt = sa.select(alerts).order_by(alerts.c.opened_at.desc()).limit(limit)
    if not include_resolved:
        stmt = stmt.where(alerts.c.state == "firing")
    with store.reading() as conn:
        return [AlertRow(**r) for r in conn.execute(stmt).mappings()]


def events_of(store: Store, alert_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    ids = list(alert_ids)
    out: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if not ids:
        return out
    stmt = sa.select(alert_events).where(alert_events.c.alert_id.in_(ids)).order_by(alert_events.c.id)
    with store.reading() as conn:
        for r in conn.execute(stmt).mappings():
            out[r["alert_id"]].append(
                {"at": r["at"], "day": r["day"], "event": r["event"], "detail": r["detail"]}
            )
    return out


def new_alert(
    conn: sa.Connection,
    key: AlertKey,
    *,
    now: datetime,
    day: date,
    summary: str,
    today: str | None,
    baseline: str | None,
    detail: str,
) -> str:
    alert_id = uuid.uuid4().hex
    conn.execute(
        alerts.insert().values(
            id=alert_id,
            model_id=key[0],
            scope=key[1],
            signal=key[2],
            state="firing",
            opened_at=now,
            opened_day=day,
            resolved_at=None,
            resolved_day=None,
            last_notified_at=None,
            notify_count=0,
            summary=summary,
            today=today,
            baseline=baseline,
            detail=detail,
            last_day=day,
        )
    )
    return alert_id


def update_alert(conn: sa.Connection, alert_id: str, **values: Any) -> None:
    conn.execute(alerts.update().where(alerts.c.id == alert_id).values(**values))


def add_event(
    conn: sa.Connection, alert_id: str, *, at: datetime, day: date, event: str, detail: str = ""
) -> None:
    conn.execute(alert_events.insert().values(alert_id=alert_id, at=at, day=day, event=event, detail=detail))


# --------------------------------------------------------------------------- silences


def add_silence(
    store: Store, *, model_id: str, canary_id: str | None, until: datetime, reason: str, now: datetime
) -> int:
    with store.writing() as conn:
        result = conn.execute(
            silences.insert().values(
                model_id=model_id, canary_id=canary_id, until=until, reason=reason, created_at=now
            )
        )
        return int(result.inserted_primary_key[0])


def active_silences(conn: sa.Connection, at: datetime) -> list[SilenceRow]:
    rows = conn.execute(sa.select(silences).where(silences.c.until > at)).mappings()
    return [SilenceRow(**r) for r in rows]


def list_silences(store: Store, at: datetime) -> list[SilenceRow]:
    with store.reading() as conn:
        return active_silences(conn, at)


# --------------------------------------------------------------------------- outbox


def enqueue(
    conn: sa.Connection, message_id: str, channels: Iterable[str], payload: str, now: datetime
) -> None:
    for channel in channels:
        conn.execute(
            notifications.insert().values(
                message_id=message_id,
                channel=channel,
                payload=payload,
                status="queued",
                created_at=now,
                attempts=0,
                last_error=None,
                last_attempt_at=None,
                sent_at=None,
                claimed_by=None,
                claimed_until=None,
                next_attempt_at=None,
                first_attempt_at=None,
            )
        )


_OUTBOX_COLUMNS = (
    "message_id",
    "channel",
    "payload",
    "status",
    "created_at",
    "attempts",
    "last_error",
    "sent_at",
    "next_attempt_at",
    "last_attempt_at",
    "first_attempt_at",
)


def _outbox_select() -> sa.Select:
    return sa.select(*(notifications.c[name] for name in _OUTBOX_COLUMNS))


def queued(store: Store) -> list[OutboxRow]:
    """Every notification still to deliver, due or backing off, oldest first."""
    c = notifications.c
    with store.reading() as conn:
        rows = conn.execute(_outbox_select().where(c.status == "queued").order_by(c.created_at)).mappings()
        return [OutboxRow(**r) for r in rows]


def failed(store: Store, limit: int = 50, since: datetime | None = None) -> list[OutboxRow]:
    """Notifications that will never be delivered (refused for good, or given up), newest first;
    with `since`, only those whose last attempt was at or after it."""
    c = notifications.c
    stmt = (
        _outbox_select().where(c.status == "failed").order_by(c.last_attempt_at.desc(), c.created_at.desc())
    )
    if since is not None:
        stmt = stmt.where(c.last_attempt_at >= since)
    with store.reading() as conn:
        return [OutboxRow(**r) for r in conn.execute(stmt.limit(limit)).mappings()]


def outbox(store: Store, limit: int = 200) -> list[OutboxRow]:
    c = notifications.c
    with store.reading() as conn:
        stmt = _outbox_select().order_by(c.created_at.desc()).limit(limit)
        return [OutboxRow(**r) for r in conn.execute(stmt).mappings()]


def claim(store: Store, row: OutboxRow, *, owner: str, now: datetime, lease: timedelta) -> bool:
    """Take a queued notification for delivery; False if another process holds or sent it."""
    c = notifications.c
    stmt = (
        notifications.update()
        .where(c.message_id == row.message_id, c.channel == row.channel, c.status == "queued")
        .where(sa.or_(c.claimed_until.is_(None), c.claimed_until < now))
        .values(claimed_by=owner, claimed_until=now + lease)
    )
    with store.writing() as conn:
        return conn.execute(stmt).rowcount == 1


def finish_delivery(
    store: Store,
    row: OutboxRow,
    *,
    owner: str,
    now: datetime,
    error: str | None,
    attempts: int,
    failed: bool = False,
    next_attempt_at: datetime | None = None,
    started: datetime | None = None,
) -> None:
    """Record one delivery round (begun at `started`): sent (error None), failed for good
    (`failed`), or still queued and not retried before `next_attempt_at`. Only the claim's owner
    may record it."""
    c = notifications.c
    values: dict[str, Any] = {
        "attempts": c.attempts + attempts,
        "last_attempt_at": now,
        "claimed_until": None,
        "first_attempt_at": sa.func.coalesce(c.first_attempt_at, started or now),
    }
    if error is None:
        values |= {"status": "sent", "sent_at": now, "last_error": None, "next_attempt_at": None}
    elif failed:
        values |= {"status": "failed", "last_error": error[:500], "next_attempt_at": None}
    else:
        values |= {"last_error": error[:500], "claimed_by": None, "next_attempt_at": next_attempt_at}
    stmt = (
        notifications.update()
        .where(c.message_id == row.message_id, c.channel == row.channel, c.claimed_by == owner)
        .values(**values)
    )
    with store.writing() as conn:
        conn.execute(stmt)
