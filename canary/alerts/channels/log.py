"""The log channel: always on by default, so an alert is recorded even when every
remote channel is down."""

from __future__ import annotations

import logging

from canary.alerts.channels.text import one_line, render_text
from canary.alerts.message import AlertMessage

LOGGER_NAME = "canary.alerts"


class LogChannel:
    """Writes the text rendering to `canary.alerts`: WARNING while something fires,
    INFO when a message only reports recoveries."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger(LOGGER_NAME)

    def deliver(self, message: AlertMessage) -> None:
        firing = any(e.event != "resolved" for e in message.events)
        level = logging.WARNING if firing else logging.INFO
        try:
            text = render_text(message)
        except Exception:  # a malformed event must not cost the outbox its log line
            text = f"{one_line(message.title)} ({len(message.events)} events; could not render the details)"
        self._logger.log(level, "%s", text)

    def __repr__(self) -> str:
        return "LogChannel()"
