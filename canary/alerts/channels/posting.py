"""One HTTP POST for the Slack and webhook channels, with errors that never show the URL.

A Slack incoming-webhook URL *is* the credential, so it must not reach an exception, a
log line or a traceback. httpx's Client logs every request URL at INFO, so the request
goes straight through a transport (which does not log), and proxies from the environment
are resolved here instead of by the Client."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlsplit

from canary.alerts.message import DeliveryError

USER_AGENT = "canary-alerts/1"
_MAX_BODY = 64 * 1024  # the answer is only read for a short hint
_HINT = re.compile(r"^[A-Za-z0-9_. -]{1,60}$")  # e.g. Slack's "invalid_payload"


def is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _proxy_for(url: str) -> str | None:
    """The proxy the environment asks for (HTTPS_PROXY, NO_PROXY, ...), as httpx's Client would."""
    proxies = urllib.request.getproxies_environment()
    if not proxies:
        return None
    parts = urlsplit(url)
    if urllib.request.proxy_bypass_environment(parts.hostname or "", proxies):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")


def _scrub(text: str, url: str) -> str:
    """Remove the URL and its path/query (where webhook tokens live) from an error text."""
    parts = urlsplit(url)
    for secret in (url, parts.path + ("?" + parts.query if parts.query else ""), parts.query, parts.path):
        if len(secret) > 1:
            text = text.replace(secret, "<redacted>")
    return " ".join(text.split())


def _hint(status: int, body: bytes) -> str:
    if not 400 <= status < 500:
        return ""
    text = body[:200].decode("utf-8", "replace").strip()
    return f" ({text})" if _HINT.match(text) else ""


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float, label: str) -> int:
    """POST `body`; return the 2xx status or raise DeliveryError naming `label`, never `url`."""
    import httpx

    request = httpx.Request(
        "POST",
        url,
        content=body,
        headers={"User-Agent": USER_AGENT, **headers},
        extensions={"timeout": httpx.Timeout(timeout_s).as_dict()},
    )
    try:
        with httpx.HTTPTransport(proxy=_proxy_for(url)) as transport:
            response = transport.handle_request(request)
            try:
                answer = b""
                for chunk in response.iter_raw():
                    answer += chunk
                    if len(answer) >= _MAX_BODY:
                        break
            finally:
                response.close()
    except httpx.TimeoutException:
        raise DeliveryError(f"{label}: no answer within {timeout_s:g}s") from None
    except httpx.HTTPError as exc:
        reason = _scrub(str(exc), url) or type(exc).__name__
        raise DeliveryError(f"{label}: {type(exc).__name__}: {reason}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"{label} answered HTTP {response.status_code}{_hint(response.status_code, answer)}")
    return response.status_code
