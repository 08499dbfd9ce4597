"""Deliver queued notifications: claim, send with retries, record. A claim makes each
(message, channel) go out once even when two processes deliver at the same time.

What happens to a notification that does not go out depends on why:
- refused for good (DeliveryError.permanent: a webhook 4xx, Slack's `channel_not_found`, an
  SMTP 5xx): marked `failed` with the reason and never tried again;
- a temporary failure (5xx, 408, 429, refused connection, timeout, SMTP 4xx): stays queued and
  backs off across invocations: `next_attempt_at` is set from the receiver's Retry-After or an
  exponential backoff, and a later check or run only retries it once it is due;
- still undeliverable `give_up_hours` after its first delivery attempt: marked `failed`.
A channel that refuses for good (or is given up on) raises a `channel` alert on the other
channels (canary.alerts.delivery_health); it resolves when the channel delivers again."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from canary.alerts import delivery_health
from canary.alerts.channels.text import one_line
from canary.alerts.message import AlertEvent, AlertMessage, DeliveryError, message_from_json
from canary.store import alerting as db
from canary.store.store import Store

LEASE = timedelta(minutes=10)  # longer than any delivery with its retries
RETRY_DELAYS_S = (0.5, 2.0, 5.0)  # between the tries of one invocation
MAX_INLINE_RETRY_AFTER_S = 10.0  # a longer Retry-After ends this invocation's tries
BACKOFF_FIRST = timedelta(minutes=1)  # across invocations: doubled per failed try...
BACKOFF_MAX = timedelta(hours=1)  # ...up to this, or the receiver's Retry-After if longer
GIVE_UP_HOURS = 24.0


@dataclass
class DeliveryReport:
    sent: list[tuple[str, str]] = field(default_factory=list)  # (channel, message id)
    failed: list[tuple[str, str, str]] = field(
        default_factory=list
    )  # still queued: (channel, message id, error)
    gave_up: list[tuple[str, str, str]] = field(default_factory=list)  # now `failed` for good
    deferred: int = 0  # queued but backing off: not due yet
    unconfigured: int = 0  # queued for a channel that is no longer configured
    channel_events: list[AlertEvent] = field(default_factory=list)  # `channel` alerts opened or resolved
    # channel -> why it refuses for good, or None when it delivered; the last outcome of this invocation
    health: dict[str, str | None] = field(default_factory=dict)


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def group(events: Sequence[AlertEvent], *, now: datetime, report_url: str | None) -> AlertMessage:
    """One message for all of a check's new events, firing first."""
    order = {"firing": 0, "repeat": 1, "resolved": 2}
    ordered = tuple(sorted(events, key=lambda e: (order[e.event], e.model_id, e.scope, e.signal)))
    firing = sum(e.event != "resolved" for e in ordered)
    resolved = len(ordered) - firing
    parts = []
    if firing:
        parts.append(f"{firing} alert{'s' if firing != 1 else ''} firing")
    if resolved:
        parts.append(f"{resolved} resolved")
    head = ordered[0].summary if len(ordered) == 1 else f"{ordered[0].model_id} {ordered[0].signal} and more"
    return AlertMessage(
        id=uuid.uuid4().hex,
        title=f"canary: {', '.join(parts)} — {head}",
        events=ordered,
        created_at=now,
        report_url=report_url,
    )


def next_attempt_at(now: datetime, attempts: int, retry_after_s: float | None, expires: datetime) -> datetime:
    """When a temporary failure may be retried: exponential backoff over every try so far, never
    before the receiver's Retry-After, and no later than the give-up moment (one last try then)."""
    backoff = min(BACKOFF_FIRST * 2 ** max(0, attempts - 1), BACKOFF_MAX)
    if retry_after_s is not None:
        backoff = max(backoff, timedelta(seconds=min(retry_after_s, 366 * 86400.0)))
    return max(now, min(now + backoff, expires))


def deliver_pending(
    store: Store,
    channels: Sequence,  # canary.alerts.channels.Channel
    *,
    attempts: int,
    owner: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    give_up_hours: float = GIVE_UP_HOURS,
) -> DeliveryReport:
    """Deliver every due notification, then raise or resolve `channel` alerts for what this
    taught about the channels and deliver those on the channels that work."""
    report = DeliveryReport()
    owner = owner or owner_id()
    give_up = timedelta(hours=give_up_hours)
    _deliver(
        store, channels, report, attempts=attempts, owner=owner, sleep=sleep, clock=clock, give_up=give_up
    )
    for _ in range(len(channels) + 1):  # each round can only take more channels out
        health, report.health = report.health, {}
        news = delivery_health.update(store, [c.name for c in channels], health, now=clock())
        report.channel_events += news.events
        if news.message_id is None:
            break
        _deliver(
            store,
            channels,
            report,
            attempts=attempts,
            owner=owner,
            sleep=sleep,
            clock=clock,
            give_up=give_up,
            only=news.message_id,
        )
    return report


def _deliver(
    store: Store,
    channels: Sequence,
    report: DeliveryReport,
    *,
    attempts: int,
    owner: str,
    sleep: Callable[[float], None],
    clock: Callable[[], datetime],
    give_up: timedelta,
    only: str | None = None,
) -> None:
    by_name = {c.name: c for c in channels}
    for row in db.queued(store):
        if only is not None and row.message_id != only:
            continue
        channel = by_name.get(row.channel)
        if channel is None:
            report.unconfigured += 1
            continue
        if row.next_attempt_at is not None and row.next_attempt_at > clock():
            report.deferred += 1
            continue
        started = clock()
        if not db.claim(store, row, owner=owner, now=started, lease=LEASE):
            continue
        error, reason, permanent, retry_after, tries = _attempts(channel, row, attempts, sleep)
        now = clock()
        expires = (row.first_attempt_at or started) + give_up
        if error is None:
            db.finish_delivery(store, row, owner=owner, now=now, error=None, attempts=tries, started=started)
            report.sent.append((row.channel, row.message_id))
            report.health[row.channel] = None
        elif permanent or now >= expires:
            if not permanent:
                hours = give_up.total_seconds() / 3600
                error, reason = f"gave up after {hours:g} h: {error}", f"gave up after {hours:g} h ({reason})"
            db.finish_delivery(
                store, row, owner=owner, now=now, error=error, attempts=tries, failed=True, started=started
            )
            report.gave_up.append((row.channel, row.message_id, error))
            if tries:  # an unreadable payload is not the channel's fault
                report.health[row.channel] = reason
        else:
            due = next_attempt_at(now, row.attempts + tries, retry_after, expires)
            db.finish_delivery(
                store,
                row,
                owner=owner,
                now=now,
                error=error,
                attempts=tries,
                next_attempt_at=due,
                started=started,
            )
            report.failed.append((row.channel, row.message_id, error))


def _attempts(
    channel: object, row: db.OutboxRow, attempts: int, sleep: Callable[[float], None]
) -> tuple[str | None, str, bool, float | None, int]:
    """Up to `attempts` tries now: (error, short reason, permanent, retry_after_s, tries)."""
    try:
        message = message_from_json(row.payload)
    except (ValueError, KeyError, TypeError) as exc:  # a payload no version of this code can read
        return f"unreadable notification payload ({type(exc).__name__})", "unreadable payload", True, None, 0
    error: str | None = None
    reason, permanent, retry_after, tries = "", False, None, 0
    for attempt in range(attempts):
        tries += 1
        try:
            channel.deliver(message)  # type: ignore[attr-defined]
            return None, "", False, None, tries
        except DeliveryError as exc:  # receiver text: flattened, so no terminal escape reaches `status`
            error, reason = one_line(str(exc), 500), one_line(exc.reason, 200)
            permanent, retry_after = exc.permanent, exc.retry_after_s
        except Exception as exc:  # a broken channel must not lose the notification
            error = f"{type(exc).__name__} in the {row.channel} channel"
            reason, permanent, retry_after = error, False, None
        if permanent or attempt == attempts - 1:
            break
        wait = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
        if retry_after is not None:
            if retry_after > MAX_INLINE_RETRY_AFTER_S:
                break  # the receiver asked for longer than a check should wait: next invocation
            wait = max(wait, retry_after)
        sleep(wait)
    return error, reason, permanent, retry_after, tries
