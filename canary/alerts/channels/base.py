"""What every delivery channel promises, so the outbox can treat them alike."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from canary.alerts.message import AlertMessage


@runtime_checkable
class Channel(Protocol):
    """One way of telling a person. `deliver` makes at most one attempt and raises
    DeliveryError on failure: retrying is the outbox's job, so a slow channel never
    multiplies its own timeouts."""

    name: str  # "email" | "slack" | "webhook" | "log"

    def deliver(self, message: AlertMessage) -> None: ...
