"""Deliver queued notifications: claim, send with retries, record. What fails stays queued for
the next `check` or run; a claim makes each (message, channel) go out once even when two
processes deliver at the same time."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from canary.alerts.message import AlertEvent, AlertMessage, DeliveryError, message_from_json
from canary.store import alerting as db
from canary.store.store import Store

LEASE = timedelta(minutes=10)  # longer than any delivery with its retries
RETRY_DELAYS_S = (0.5, 2.0, 5.0)


@dataclass
class DeliveryReport:
    sent: list[tuple[str, str]] = field(default_factory=list)  # (channel, message id)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (channel, message id, error)
    unconfigured: int = 0  # queued for a channel that is no longer configured


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
        id=uuid.uuid4().hex, title=f"canary: {', '.join(parts)} — {head}", events=ordered, created_at=now,
        report_url=report_url,
    )


def deliver_pending(
    store: Store,
    channels: Sequence,  # canary.alerts.channels.Channel
    *,
    attempts: int,
    owner: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DeliveryReport:
    report = DeliveryReport()
    owner = owner or owner_id()
    by_name = {c.name: c for c in channels}
    for row in db.queued(store):
        channel = by_name.get(row.channel)
        if channel is None:
            report.unconfigured += 1
            continue
        if not db.claim(store, row, owner=owner, now=clock(), lease=LEASE):
            continue
        message = message_from_json(row.payload)
        error: str | None = None
        tries = 0
        for attempt in range(attempts):
            tries += 1
            try:
                channel.deliver(message)
                error = None
                break
            except DeliveryError as exc:
                error = str(exc)
            except Exception as exc:  # a broken channel must not lose the notification
                error = f"{type(exc).__name__} in the {row.channel} channel"
            if attempt < attempts - 1:
                sleep(RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)])
        db.finish_delivery(store, row, owner=owner, now=clock(), error=error, attempts=tries)
        if error is None:
            report.sent.append((row.channel, row.message_id))
        else:
            report.failed.append((row.channel, row.message_id, error))
    return report
