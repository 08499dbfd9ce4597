"""Turn whatever an SDK, httpx2 or the stream decoder raised into one classified `ProviderError`.

The split decides a sample's outcome: retryable failures are the service being unavailable,
the rest are client or configuration errors that retrying cannot fix. Both SDKs share the
Stainless error shapes, so one classifier serves both; the SDK module is passed in because
the SDKs are imported lazily."""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from canary.records import ProviderError

RETRYABLE_4XX = frozenset({408, 409, 429})
QUOTA_WORDS = ("quota", "spend_limit", "spend limit", "billing", "credit", "insufficient_funds")
MAX_MESSAGE = 200

# Vendors echo (partly masked) keys in 401 messages: `sk-...`-style tokens with a digit or a mask
# character, and bearer credentials, are never kept even when they are not our key.
_KEYLIKE = re.compile(r"\b(?:sk|pk|rk)[-_](?=[\w\-.]*[\d*])[\w\-*.]{6,}|\bBearer\s+\S+", re.IGNORECASE)


class BadBody(Exception):
    """A 200 body canary cannot read as the vendor's reply; `args[0]` says why in a few words."""


class ErrorInStream(Exception):
    """An error event (Anthropic) or error chunk (OpenAI) inside a 200 stream: the service broke
    mid-answer, so it is a mid-stream failure, not a bad body."""


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Remove the given secrets and anything shaped like an API key from `text`."""
    return _KEYLIKE.sub("[redacted]", _without(text, secrets))


def _without(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


def one_line(text: str, secrets: Iterable[str | None] = ()) -> str:
    text = " ".join(redact(str(text), secrets).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def short_code(value: str, secrets: Iterable[str | None] = ()) -> str:
    """A machine code: one token, at most 64 characters, our key replaced (never pattern-redacted)."""
    return "_".join(_without(value, secrets).split())[:64] or "error"


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms`, then `retry-after` as seconds or an HTTP date."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(0.0, float(email.utils.mktime_tz(parsed) - time.time()))


def error_fields(body: object) -> tuple[str | None, str | None, str | None, str | None]:
    """(type, code, detail code, message) from either vendor's error body.

    Anthropic sends {"type": "error", "error": {...}}; the OpenAI SDK hands over the inner object."""
    err: Any = body
    if isinstance(err, Mapping) and isinstance(err.get("error"), Mapping):
        err = err["error"]
    if not isinstance(err, Mapping):
        return None, None, None, (str(body) if isinstance(body, str) and body else None)
    details = err.get("details")
    detail_code = details.get("error_code") if isinstance(details, Mapping) else None

    def text(value: object) -> str | None:
        return str(value) if value not in (None, "") else None

    return text(err.get("type")), text(err.get("code")), text(detail_code), text(err.get("message"))


def is_quota(*fields: str | None) -> bool:
    """A 429 that waiting will not fix: quota, spend limit, billing or credit exhausted."""
    haystack = " ".join(f.lower() for f in fields if f)
    return any(word in haystack for word in QUOTA_WORDS)


def status_retryable(status: int) -> bool:
    return status in RETRYABLE_4XX or status >= 500


def from_status(
    status: int,
    body: object,
    headers: Mapping[str, str] | None,
    secrets: Iterable[str | None] = (),
) -> ProviderError:
    """Classify an HTTP error response."""
    secrets = tuple(secrets)
    type_, code, detail, message = error_fields(body)
    vendor = type_ or code or detail or f"http_{status}"
    retryable = status_retryable(status)
    machine = vendor
    if status == 429 and is_quota(type_, code, detail, message):
        retryable, machine = False, "quota"
    label = vendor if machine == vendor else f"{machine} ({detail or vendor})"
    text = f"HTTP {status} {label}" + (f": {message}" if message else "")
    error = ProviderError(
        one_line(text, secrets),
        retryable=retryable,
        status=status,
        code=short_code(machine, secrets),
    )
    error.should_retry = should_retry(headers)
    if error.retries:
        error.retry_after_s = parse_retry_after(headers)
    return error


def should_retry(headers: Mapping[str, str] | None) -> bool | None:
    """The server's `x-should-retry: true|false`, obeyed over the status as both SDKs do."""
    value = (headers or {}).get("x-should-retry")
    if value is None:
        return None
    value = value.strip().lower()
    return True if value == "true" else False if value == "false" else None


def mid_stream(what: str, secrets: Iterable[str | None] = ()) -> ProviderError:
    """A failure after the 200 arrived: the service broke, so it is always retryable."""
    return ProviderError(
        one_line(f"mid-stream {what}", secrets), retryable=True, status=200, code="mid_stream"
    )


def bad_response(what: str, excerpt: str | None, secrets: Iterable[str | None] = ()) -> ProviderError:
    """A 200 whose body is not the vendor's shape (HTML from a proxy, `[]`, `null`, missing fields,
    undecodable bytes, a stream without its closing event): the service is broken, so retryable.
    `excerpt` is already capped and redacted (canary.providers.body.Excerpt)."""
    return ProviderError(
        one_line(f"bad response: {what}", secrets),
        retryable=True,
        status=200,
        code="bad_response",
        excerpt=excerpt,
    )


def classify(
    exc: BaseException,
    sdk: ModuleType,
    *,
    after_200: bool,
    secrets: Iterable[str | None] = (),
) -> ProviderError | None:
    """The ProviderError for `exc`, or None when it is not a service failure (a bug: let it raise).

    `after_200` says the response headers had already arrived, so any failure is mid-stream."""
    import httpx2

    secrets = tuple(secrets)
    if isinstance(exc, ProviderError):
        exc.message = one_line(exc.message, secrets)
        exc.args = (exc.message,)
        return exc
    if isinstance(exc, BadBody):  # the adapters attach an excerpt; this is the safety net
        return bad_response(str(exc), None, secrets)
    status = getattr(exc, "status_code", None)
    if isinstance(exc, sdk.APIStatusError) and isinstance(status, int) and status >= 400 and not after_200:
        return from_status(status, exc.body, exc.response.headers, secrets)
    if isinstance(exc, sdk.APIError) and not isinstance(
        exc, sdk.APIConnectionError | sdk.APIResponseValidationError
    ):
        # An error event inside a 200 stream (both SDKs raise it from the iterator).
        type_, code, detail, message = error_fields(exc.body)
        label = type_ or code or detail or "error"
        return mid_stream(f"{label}" + (f": {message}" if message else ""), secrets)
    timeout = isinstance(exc, sdk.APITimeoutError | httpx2.TimeoutException | TimeoutError)
    connection = isinstance(exc, sdk.APIConnectionError | httpx2.RequestError | httpx2.StreamError)
    root = _root(exc)
    if timeout and isinstance(root, OSError) and not isinstance(root, TimeoutError):
        # The aiohttp transport reports a refused connection as a connect *timeout*.
        timeout, connection = False, True
    if after_200 and (timeout or connection):
        return mid_stream("timeout" if timeout else f"connection error ({_cause_name(exc)})", secrets)
    if timeout:
        return ProviderError("request timed out", retryable=True, code="timeout")
    if connection:
        return ProviderError(
            one_line(f"connection error ({_cause_name(exc)})", secrets), retryable=True, code="connection"
        )
    if isinstance(
        exc, sdk.APIResponseValidationError | json.JSONDecodeError | UnicodeDecodeError
    ) or _is_validation(exc):
        # An answer we cannot read is the service misbehaving, not the request being wrong.
        return ProviderError(
            one_line(f"undecodable response ({type(exc).__name__})", secrets),
            retryable=True,
            status=200,
            code="bad_response",
        )
    return None


def _root(exc: BaseException) -> BaseException:
    inner: BaseException = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    return inner


def _cause_name(exc: BaseException) -> str:
    """The underlying transport error's class name: informative, and never carries a secret."""
    return type(_root(exc)).__name__


def _is_validation(exc: BaseException) -> bool:
    from pydantic import ValidationError

    return isinstance(exc, ValidationError)
