"""Slack incoming-webhook channel: a readable Block Kit message.

Every interpolated string is escaped for mrkdwn (`&`, `<`, `>`), so model-derived text
can neither ping `<!channel>` nor smuggle a link, and every block stays inside Slack's
size limits, because Slack rejects the whole message when one block is too long.

Only an answer of `ok` is a delivery: Slack reports a removed channel or a revoked hook as
an error word (`channel_not_found`, `invalid_token`, `no_service`), sometimes with a 200 and
sometimes as JSON `{"ok": false, "error": ...}`. Those words, and a 400/403/404/410, are
permanent; anything else that is not `ok` is retried by the outbox."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from canary.alerts.channels.posting import Answer, check_status, is_http_url, post
from canary.alerts.channels.text import label, one_line
from canary.alerts.message import AlertEvent, AlertMessage, DeliveryError

MAX_BLOCKS = 50
HEADER_LIMIT = 150
TEXT_LIMIT = 3000
FIELD_LIMIT = 2000
FALLBACK_LIMIT = 3000
EMOJI = {"firing": ":red_circle:", "repeat": ":large_orange_circle:", "resolved": ":large_green_circle:"}
LABEL = "slack webhook"
# Slack's error words that no retry can fix: the hook, channel, token or payload is gone or wrong.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "channel_is_archived",
        "invalid_token",
        "invalid_auth",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "no_active_hooks",
        "action_prohibited",
        "posting_to_general_channel_denied",
        "restricted_action",
        "user_not_found",
        "invalid_payload",
        "invalid_blocks",
        "invalid_blocks_format",
        "missing_text_or_fallback_or_attachments",
        "too_many_attachments",
        "not_authed",
        "missing_scope",
    }
)
_WORD = re.compile(r"^[a-z0-9_]{1,60}$")


def slack_error(answer: Answer) -> str | None:
    """None when Slack said `ok`; else its error word, or a description of what came instead."""
    text = answer.body.decode("utf-8", "replace").strip()
    if text == "ok":
        return None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and "ok" in data:
        if data["ok"] is True:
            return None
        word = str(data.get("error") or "")
        return word if _WORD.match(word) else "an error Slack did not name"
    if _WORD.match(text):
        return text
    return (
        f"an answer that is not `ok` ({len(answer.body)} bytes)"
        if text
        else "an empty answer instead of `ok`"
    )


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
        "fields": [
            {"type": "mrkdwn", "text": f"*{name}*\n{_safe(value, FIELD_LIMIT - 20)}"}
            for name, value in fields
        ],
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
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _safe(message.title, HEADER_LIMIT), "emoji": True},
        }
    ]
    context: list[dict[str, Any]] = []
    if message.report_url:
        context.append({"type": "mrkdwn", "text": link(message.report_url, "Open the canary report")})
    context.append(
        {
            "type": "mrkdwn",
            "text": f"canary · {escape(message.created_at.strftime('%Y-%m-%d %H:%M %Z').strip())}",
        }
    )
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
        answer = post(
            self._url, body, {"Content-Type": "application/json; charset=utf-8"}, self._timeout_s, LABEL
        )
        error = slack_error(answer)
        if not 200 <= answer.status < 300:
            if error and _WORD.match(error) and error in PERMANENT_ERRORS:
                raise DeliveryError(
                    f"{LABEL} answered HTTP {answer.status} ({error})", permanent=True, reason=error
                )
            check_status(answer, LABEL)
        if error is None:
            return
        permanent = error in PERMANENT_ERRORS
        raise DeliveryError(
            f"{LABEL} answered HTTP {answer.status} with {error}",
            permanent=permanent,
            retry_after_s=None if permanent else answer.retry_after_s(),
            reason=error,
        )

    def __repr__(self) -> str:
        return "SlackSender(<webhook url from environment>)"
