"""Generic JSON webhook: the whole message as data, signed so the receiver can trust it.

`X-Canary-Signature` is an HMAC-SHA256 of the exact body bytes (GitHub's scheme), and
`X-Canary-Delivery` carries the message id so a receiver can drop the duplicates that
an at-least-once outbox will sometimes send.

Any 2xx is a delivery. A 4xx other than 408/429 is permanent (the outbox stops retrying and
raises a `channel` alert); a 5xx, 408 or 429 is retried, after its Retry-After."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from canary.alerts.channels.posting import check_status, post
from canary.alerts.channels.text import one_line
from canary.alerts.message import AlertMessage

SIGNATURE_HEADER = "X-Canary-Signature"
DELIVERY_HEADER = "X-Canary-Delivery"


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def build_payload(message: AlertMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "title": message.title,
        "created_at": message.created_at.isoformat(),
        "report_url": message.report_url,
        "events": [
            {f.name: _jsonable(getattr(e, f.name)) for f in dataclasses.fields(e)} for e in message.events
        ],
    }


def encode(message: AlertMessage) -> bytes:
    """The exact bytes that are sent and signed."""
    return json.dumps(build_payload(message), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign(body: bytes, secret: bytes) -> str:
    """The X-Canary-Signature value; a receiver recomputes it and compares in constant time."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def describe(url: str, url_env: str | None) -> str:
    """How errors name this webhook: the variable if the URL is a secret, else only its origin."""
    if url_env:
        return f"webhook (URL from ${url_env})"
    parts = urlsplit(url)
    return f"webhook {parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


class WebhookSender:
    """POSTs the message as JSON. The URL (when it came from the environment) and the
    signing secret stay in this object: not in errors, logs or repr."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        url_env: str | None = None,
        secret: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 15.0,
    ) -> None:
        self._url = url
        self._label = describe(url, url_env)
        self._secret = secret
        reserved = {"content-type", DELIVERY_HEADER.lower(), SIGNATURE_HEADER.lower()}
        self._headers = {k: v for k, v in (headers or {}).items() if k.lower() not in reserved}
        self._timeout_s = timeout_s

    def deliver(self, message: AlertMessage) -> None:
        body = encode(message)
        headers = {
            **self._headers,
            "Content-Type": "application/json; charset=utf-8",
            DELIVERY_HEADER: one_line(message.id, 200),
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self._secret)
        check_status(post(self._url, body, headers, self._timeout_s, self._label), self._label)

    def __repr__(self) -> str:
        return f"WebhookSender({self._label})"
