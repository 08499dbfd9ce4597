"""Plain-text rendering shared by the log and email channels.

Every interpolated string may come from a model or a canary file, so control characters
are flattened: a served model name with a newline must not forge a second log line."""

from __future__ import annotations

import re

from canary.alerts.message import AlertEvent, AlertMessage

LABELS = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED"}

# C0/C1 controls, line/paragraph separators and bidi overrides (which can disguise text).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")


def one_line(text: object, limit: int = 2000) -> str:
    """`text` as a single printable line of at most `limit` characters."""
    flat = _UNSAFE.sub(" ", str(text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def label(event: AlertEvent) -> str:
    return LABELS.get(event.event, one_line(event.event, 20).upper())


def render_event(event: AlertEvent) -> list[str]:
    lines = [
        f"[{label(event)}] {one_line(event.model_id)} / {one_line(event.scope)} / {one_line(event.signal)}",
        f"  {one_line(event.summary)}",
    ]
    if event.today or event.baseline:
        lines.append(f"  today: {one_line(event.today or '-')}   baseline: {one_line(event.baseline or '-')}")
    if event.day:
        lines.append(f"  day: {event.day.isoformat()}")
    if event.detail:
        lines.append(f"  why: {one_line(event.detail)}")
    if event.report_url:
        lines.append(f"  details: {one_line(event.report_url)}")
    return lines


def render_text(message: AlertMessage) -> str:
    """The whole notification as plain text, one block per event."""
    lines = [one_line(message.title), ""]
    for event in message.events:
        lines += render_event(event)
        lines.append("")
    if message.report_url:
        lines.append(f"Report: {one_line(message.report_url)}")
    return "\n".join(lines).rstrip()
