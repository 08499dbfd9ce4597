"""Slack incoming-webhook channel: a readable Block Kit message.

Every interpolated string is escaped for mrkdwn (`&`, `<`, `>`), so model-derived text
can neither ping `<!channel>` nor smuggle a link, and every block stays inside Slack's
size limits, because Slack rejects the whole message when one block is too long."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from canary.alerts.channels.posting import is_http_url, post
from canary.alerts.channels.text import label, one_line
from canary.alerts.message import AlertEvent, AlertMessage

MAX_BLOCKS = 50
HEADER_LIMIT = 150
TEXT_LIMIT = 3000
FIELD_LIMIT = 2000
FALLBACK_LIMIT = 3000
EMOJI = {"firing": ":red_circle:", "repeat": ":large_orange_circle:", "resolved": ":large_green_circle:"}


def escape(text: object) -> str:
    """Slack's three control characters, as Slack documents them."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(escaped: str, limit: int) -> str:
    """Shorten already-escaped text without cutting an entity like `&amp;` in half."""
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 1]
    amp = cut.rfind("&", max(0, len(cut) - 4))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def _safe(text: object, limit: int) -> str:
    return clip(escape(one_line(text, limit)), limit)


def link(url: str, text: str) -> str:
    """A mrkdwn link; a URL that is not http(s) is shown as text rather than linked."""
    if not is_http_url(url):
        return _safe(f"{text}: {url}", 500)
    target = escape(quote(one_line(url), safe=":/?#[]@!$&'()*+,;=%~"))
    return f"<{target}|{escape(text)}>"


def _event_block(event: AlertEvent) -> dict[str, Any]:
    emoji = EMOJI.get(event.event, ":white_circle:")
    text = f"{emoji} *{escape(label(event))}*  {_safe(event.summary, 1000)}"
    if event.detail:
        text += f"\n{_safe(event.detail, 1500)}"
    if event.report_url:
        text += f"\n{link(event.report_url, 'details')}"
    fields = [("Model", event.model_id), ("Scope", event.scope), ("Signal", event.signal)]
    if event.today or event.baseline:
        fields += [("Today", event.today or "-"), ("Baseline", event.baseline or "-")]
    if event.day:
        fields.append(("Day", event.day.isoformat()))
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": clip(text, TEXT_LIMIT)},
        "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{_safe(value, FIELD_LIMIT - 20)}"} for name, value in fields],
    }


def _overflow_block(events: tuple[AlertEvent, ...]) -> dict[str, Any]:
    items = ", ".join(f"{one_line(e.model_id, 100)} {one_line(e.signal, 40)} ({label(e)})" for e in events)
    text = f"*…and {len(events)} more:* {escape(items)}"
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, TEXT_LIMIT)}}


def _fallback(message: AlertMessage) -> str:
    lines = [escape(one_line(message.title))]
    lines += [f"{escape(label(e))}: {_safe(e.model_id, 200)} {_safe(e.summary, 300)}" for e in message.events]
    return clip("\n".join(lines), FALLBACK_LIMIT)


def build_payload(message: AlertMessage) -> dict[str, Any]:
    """The JSON body Slack receives: header, one section per event, a report link, a `text` fallback."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _safe(message.title, HEADER_LIMIT), "emoji": True}}
    ]
    context: list[dict[str, Any]] = []
    if message.report_url:
        context.append({"type": "mrkdwn", "text": link(message.report_url, "Open the canary report")})
    context.append({"type": "mrkdwn", "text": f"canary · {escape(message.created_at.strftime('%Y-%m-%d %H:%M %Z').strip())}"})
    room = MAX_BLOCKS - 2  # header and context
    events = message.events
    if len(events) > room:
        blocks += [_event_block(e) for e in events[: room - 1]]
        blocks.append(_overflow_block(events[room - 1 :]))
    else:
        blocks += [_event_block(e) for e in events]
    blocks.append({"type": "context", "elements": context})
    return {"text": _fallback(message), "blocks": blocks}


class SlackSender:
    """Posts to one incoming webhook. The URL is the credential: it stays in this object."""

    name = "slack"

    def __init__(self, webhook_url: str, *, timeout_s: float = 15.0) -> None:
        self._url = webhook_url
        self._timeout_s = timeout_s

    def deliver(self, message: AlertMessage) -> None:
        body = json.dumps(build_payload(message), ensure_ascii=False).encode("utf-8")
        post(self._url, body, {"Content-Type": "application/json; charset=utf-8"}, self._timeout_s, "slack webhook")

    def __repr__(self) -> str:
        return "SlackSender(<webhook url from environment>)"
