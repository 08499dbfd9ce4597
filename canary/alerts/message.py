"""What a notification says, independent of the channel that carries it.

Built by canary.alerts from alert state, rendered by each channel. Every string here may
contain model-derived text (a served model name, a canary id): channels must escape it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

Event = Literal["firing", "repeat", "resolved", "gap"]  # gap: a one-shot notice (canary.gap)


@dataclass(frozen=True)
class AlertEvent:
    alert_id: str
    event: Event
    model_id: str
    scope: str  # "all canaries" or a canary id
    signal: (
        str  # quality | availability | tokens | latency | cost | served_model | retirement | stale | config
    )
    summary: str  # one line a person reads first
    today: str | None = None  # formatted, e.g. "62% (18/29)"
    baseline: str | None = None  # formatted, e.g. "95% over 14 days"
    detail: str = ""  # the detector's reason
    day: date | None = None
    report_url: str | None = None


@dataclass(frozen=True)
class AlertMessage:
    """One grouped notification: all of one check's new events for one channel."""

    id: str  # stable, for idempotent delivery
    title: str
    events: tuple[AlertEvent, ...]
    created_at: datetime
    report_url: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


class DeliveryError(Exception):
    """A channel could not deliver. The text must never contain a secret (webhook URL, SMTP password).

    `permanent`: the receiver refused for good (a webhook 4xx, Slack's `channel_not_found`, an
    SMTP 5xx): retrying cannot help, so the outbox marks the notification failed. Otherwise it
    stays queued and is retried later, not before `retry_after_s` when the receiver asked.
    `reason` is the short cause people read in a `channel` alert ("channel_not_found")."""

    def __init__(
        self,
        text: str,
        *,
        permanent: bool = False,
        retry_after_s: float | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(text)
        self.permanent = permanent
        self.retry_after_s = retry_after_s
        self.reason = reason or text


def message_to_json(message: AlertMessage) -> str:
    """The outbox payload: enough to re-render the message on any channel later."""
    import json

    return json.dumps(
        {
            "id": message.id,
            "title": message.title,
            "created_at": message.created_at.isoformat(),
            "report_url": message.report_url,
            "extra": message.extra,
            "events": [
                {**event.__dict__, "day": event.day.isoformat() if event.day else None}
                for event in message.events
            ],
        },
        ensure_ascii=False,
    )


def message_from_json(text: str) -> AlertMessage:
    import json

    data = json.loads(text)
    events = tuple(
        AlertEvent(**{**e, "day": date.fromisoformat(e["day"]) if e.get("day") else None})
        for e in data["events"]
    )
    return AlertMessage(
        id=data["id"],
        title=data["title"],
        events=events,
        created_at=datetime.fromisoformat(data["created_at"]),
        report_url=data.get("report_url"),
        extra=data.get("extra") or {},
    )
