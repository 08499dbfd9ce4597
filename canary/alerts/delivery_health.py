"""`channel` alerts: a channel that refuses notifications for good is itself an alert.

When Slack answers `channel_not_found`, or the mail server 550, every later page on that
channel is lost, and nobody learns it from that channel. So the outbox reports, per channel,
its last outcome of an invocation, and this module turns it into an alert of its own,
("*", <channel>, "channel"): opened when a channel refuses for good (or a notification is given
up on), announced on the channels that still work, shown by `canary check`, `alerts` and
`status` like any other alert (it makes `check` exit 1), and resolved, with a notice on every
working channel, when the channel delivers again. The alert is not re-notified while it fires:
the other channels have been told, and `check` keeps showing it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from canary.alerts.findings import ALL
from canary.alerts.message import AlertEvent, AlertMessage, message_to_json
from canary.store import alerting as db
from canary.store.store import Store

SIGNAL = "channel"
NAMES = {"email": "Email", "slack": "Slack", "webhook": "Webhook", "log": "Log"}


@dataclass
class HealthNews:
    events: list[AlertEvent] = field(default_factory=list)
    message_id: str | None = None  # queued for the working channels; the outbox delivers it next


def display(channel: str) -> str:
    return NAMES.get(channel, channel)


def failing_summary(channel: str, reason: str) -> str:
    return f"{display(channel)} delivery is failing: {reason}"


def _event(
    alert_id: str, kind: str, channel: str, summary: str, now: datetime, today: str | None
) -> AlertEvent:
    return AlertEvent(
        alert_id=alert_id,
        event=kind,
        model_id=ALL,
        scope=channel,
        signal=SIGNAL,  # type: ignore[arg-type]
        summary=summary,
        today=today,
        detail="notifications on this channel are not retried; fix the channel, the next one it delivers resolves this"
        if kind == "firing"
        else "",
        day=now.date(),
    )


def _channel_alerts(conn: object) -> dict[str, db.AlertRow]:
    return {a.scope: a for a in db.firing_alerts(conn).values() if a.signal == SIGNAL and a.model_id == ALL}  # type: ignore[arg-type]


def _changes(
    open_before: Mapping[str, db.AlertRow], configured: Sequence[str], health: Mapping[str, str | None]
) -> bool:
    if any(name not in configured for name in open_before):
        return True
    for name, reason in health.items():
        alert = open_before.get(name)
        if (reason is None and alert is not None) or (
            reason is not None and (alert is None or alert.today != reason)
        ):
            return True
    return False


def update(
    store: Store, configured: Sequence[str], health: Mapping[str, str | None], *, now: datetime
) -> HealthNews:
    """Open, resolve or close `channel` alerts from `health` (channel -> reason it refuses for good,
    or None when it delivered) and queue one message about the changes for the working channels."""
    news = HealthNews()
    with store.reading() as conn:
        open_before = _channel_alerts(conn)
    if not _changes(open_before, configured, health):
        return news  # nothing changes: no write transaction, no lock
    with store.writing() as conn:
        db.lock_for_check(conn)  # alert transitions are serialised with `canary check`
        firing = _channel_alerts(conn)
        day = now.date()
        for name in [n for n in firing if n not in configured]:  # removed from canary.yaml: closed quietly
            db.update_alert(
                conn, firing[name].id, state="resolved", resolved_at=now, resolved_day=day, last_day=day
            )
            db.add_event(
                conn,
                firing[name].id,
                at=now,
                day=day,
                event="resolved",
                detail="channel no longer configured in canary.yaml",
            )
            del firing[name]
        for name, reason in health.items():
            alert = firing.get(name)
            if reason is not None and alert is None:
                summary = failing_summary(name, reason)
                alert_id = db.new_alert(
                    conn,
                    (ALL, name, SIGNAL),
                    now=now,
                    day=day,
                    summary=summary,
                    today=reason,
                    baseline=None,
                    detail="refused for good; not retried",
                )
                db.add_event(conn, alert_id, at=now, day=day, event="opened", detail=summary)
                db.update_alert(conn, alert_id, last_notified_at=now, notify_count=1)
                db.add_event(conn, alert_id, at=now, day=day, event="notified", detail=summary)
                firing[name] = db.AlertRow(
                    id=alert_id,
                    model_id=ALL,
                    scope=name,
                    signal=SIGNAL,
                    state="firing",
                    opened_at=now,
                    opened_day=day,
                    resolved_at=None,
                    resolved_day=None,
                    last_notified_at=now,
                    notify_count=1,
                    summary=summary,
                    today=reason,
                    baseline=None,
                    detail="",
                    last_day=day,
                )
                news.events.append(_event(alert_id, "firing", name, summary, now, reason))
            elif reason is not None and alert is not None and alert.today != reason:
                summary = failing_summary(name, reason)
                db.update_alert(conn, alert.id, summary=summary, today=reason, last_day=day)
                db.add_event(conn, alert.id, at=now, day=day, event="updated", detail=summary)
            elif reason is None and alert is not None:
                summary = f"{display(name)} delivers again"
                db.update_alert(
                    conn,
                    alert.id,
                    state="resolved",
                    resolved_at=now,
                    resolved_day=day,
                    last_day=day,
                    summary=summary,
                )
                db.add_event(conn, alert.id, at=now, day=day, event="resolved", detail=summary)
                del firing[name]
                news.events.append(_event(alert.id, "resolved", name, summary, now, None))
        working = [name for name in configured if name not in firing]
        if news.events and working:
            head = news.events[0].summary if len(news.events) == 1 else "channel delivery changed"
            message = AlertMessage(
                id=uuid.uuid4().hex, title=f"canary: {head}", events=tuple(news.events), created_at=now
            )
            db.enqueue(conn, message.id, working, message_to_json(message), now)
            news.message_id = message.id
    return news
