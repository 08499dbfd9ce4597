"""One HTTP POST for the Slack and webhook channels: bounded, classified, never showing the URL.

A Slack incoming-webhook URL *is* the credential, so it must not reach an exception, a
log line or a traceback. The request goes through httpcore directly (httpx's Client logs
every request URL at INFO), with proxies from the environment resolved here.

Every wait has a bound: each connect, read and write has `timeout_s`, and the whole exchange
has a deadline of twice that, so a receiver that drips its answer a byte at a time still ends.
At most 64 kB of the answer is read, whatever the receiver sends.

The answer is classified the way the outbox needs it (see DeliveryError): a 4xx other than
408/429, or a redirect (never followed: the URL is wrong), is permanent; a 5xx, 408, 429, a
refused connection, a timeout or a garbled answer is temporary, with the receiver's
`Retry-After` kept."""

from __future__ import annotations

import base64
import re
import ssl
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from canary.alerts.message import DeliveryError

USER_AGENT = "canary-alerts/1"
MAX_BODY = 64 * 1024  # the answer is only read for a short hint
_HINT = re.compile(r"^[A-Za-z0-9_. -]{1,60}$")  # e.g. Slack's "invalid_payload"
TEMPORARY_STATUSES = frozenset({408, 429})
MIN_TOKEN = 6  # a path segment or query value this long may be a secret


@dataclass(frozen=True)
class Answer:
    """What the receiver said: its status, its headers (lower-cased names) and at most
    MAX_BODY bytes of its body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def hint(self) -> str:
        """The body when it is a short token such as `invalid_payload`, else ''."""
        text = self.body[:200].decode("utf-8", "replace").strip()
        return text if _HINT.match(text) else ""

    def retry_after_s(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or garbled."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, inf: garbled
        return None
    return max(0.0, seconds)


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


def _url_secrets(url: str) -> list[str]:
    """The URL and its parts that may be a token: path, query, each path segment and query value
    long enough to be one. Longest first, so a part never leaves half of a longer one behind."""
    parts = urlsplit(url)
    pieces = [url, parts.path + ("?" + parts.query if parts.query else ""), parts.query, parts.path]
    pieces += [seg for seg in parts.path.split("/") if len(seg) >= MIN_TOKEN]
    pieces += [v for pair in parts.query.split("&") for v in pair.split("=") if len(v) >= MIN_TOKEN]
    return sorted({p for p in pieces if len(p) > 1}, key=len, reverse=True)


def _scrub(text: str, url: str) -> str:
    """Remove the URL and its path/query (where webhook tokens live) from an error text."""
    for secret in _url_secrets(url):
        text = text.replace(secret, "<redacted>")
    return " ".join(text.split())


def _withhold_echo(body: bytes, url: str) -> bytes:
    """A receiver that repeats part of the URL back (a token in the path) must not put it into
    an error message, the store or a log: such an answer is replaced by a note."""
    text = body.decode("utf-8", "replace")
    if any(secret in text for secret in _url_secrets(url)):
        return b"<answer withheld: it repeats part of the URL>"
    return body


def check_status(answer: Answer, label: str) -> None:
    """Raise the classified DeliveryError for anything but a 2xx."""
    status = answer.status
    if 200 <= status < 300:
        return
    hint = answer.hint() if 400 <= status < 500 else ""
    reason = f"HTTP {status}" + (f" ({hint})" if hint else "")
    text = f"{label} answered {reason}"
    if 300 <= status < 400:
        raise DeliveryError(
            text + ": redirects are not followed, point the URL at its final address",
            permanent=True,
            reason=f"HTTP {status} redirect",
        )
    if 400 <= status < 500 and status not in TEMPORARY_STATUSES:
        raise DeliveryError(text, permanent=True, reason=reason)
    raise DeliveryError(text, retry_after_s=answer.retry_after_s(), reason=reason)


# --------------------------------------------------------------------------- a deadline on every socket wait


def _remaining(deadline: float, timeout: float | None, error: type[Exception]) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the answer did not complete in time")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream:
    """A network stream whose every read and write ends by the exchange's deadline."""

    def __init__(self, stream: Any, deadline: float) -> None:
        self._stream, self._deadline = stream, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        import httpcore

        return self._stream.read(max_bytes, _remaining(self._deadline, timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        import httpcore

        self._stream.write(buffer, _remaining(self._deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> _DeadlineStream:
        import httpcore

        left = _remaining(self._deadline, timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, left), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


def _deadline_backend(deadline: float) -> Any:
    import httpcore

    class DeadlineBackend(httpcore.NetworkBackend):
        def __init__(self) -> None:
            self._backend = httpcore.SyncBackend()

        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> Any:
            left = _remaining(deadline, timeout, httpcore.ConnectTimeout)
            stream = self._backend.connect_tcp(host, port, left, local_address, socket_options)
            return _DeadlineStream(stream, deadline)

        def connect_unix_socket(
            self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
        ) -> Any:
            left = _remaining(deadline, timeout, httpcore.ConnectTimeout)
            return _DeadlineStream(self._backend.connect_unix_socket(path, left, socket_options), deadline)

        def sleep(self, seconds: float) -> None:
            self._backend.sleep(seconds)

    return DeadlineBackend()


def _ssl_context() -> ssl.SSLContext:
    try:
        import httpx

        return httpx.create_ssl_context()  # certifi's bundle, SSL_CERT_FILE honoured, as the SDKs do
    except (ImportError, AttributeError):  # pragma: no cover - httpx < 0.28
        return ssl.create_default_context()


def _pool(url: str, deadline: float) -> Any:
    import httpcore

    backend, context = _deadline_backend(deadline), _ssl_context()
    proxy = _proxy_for(url)
    if proxy is None:
        return httpcore.ConnectionPool(ssl_context=context, network_backend=backend, max_connections=1)
    parts = urlsplit(proxy)
    headers = {}
    if parts.username:  # user:password@ in HTTPS_PROXY, sent as httpx would
        token = base64.b64encode(
            f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        ).decode()
        headers["Proxy-Authorization"] = f"Basic {token}"
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return httpcore.HTTPProxy(
        proxy_url=parts._replace(netloc=netloc).geturl(),
        proxy_headers=headers,
        ssl_context=context,
        network_backend=backend,
        max_connections=1,
    )


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float, label: str) -> Answer:
    """POST `body` and return the receiver's answer, whatever its status. Raises a temporary
    DeliveryError naming `label`, never `url`, when there is no complete answer in time."""
    import httpcore

    deadline = time.monotonic() + 2 * timeout_s
    timeouts = {"connect": timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
    request_headers = {"User-Agent": USER_AGENT, **headers}
    try:
        with (
            _pool(url, deadline) as pool,
            pool.stream(
                "POST", url, headers=request_headers, content=body, extensions={"timeout": timeouts}
            ) as response,
        ):
            answer = b""
            for chunk in response.iter_stream():
                answer += chunk
                if len(answer) >= MAX_BODY:
                    break  # enough for a hint; the rest is not read
            names = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
            return Answer(response.status, names, _withhold_echo(answer[:MAX_BODY], url))
    except httpcore.TimeoutException:
        raise DeliveryError(f"{label}: no complete answer within {timeout_s:g}s", reason="timeout") from None
    except Exception as exc:  # refused, reset, garbage instead of HTTP, TLS: all end as a recorded outcome
        kind = type(exc).__name__
        reason = _scrub(str(exc), url) or kind
        short = "connection refused" if "refused" in reason.lower() else f"{kind}: {reason}"[:120]
        raise DeliveryError(f"{label}: {kind}: {reason}", reason=short) from None
