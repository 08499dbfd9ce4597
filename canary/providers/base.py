"""The provider contract and the plumbing every vendor adapter shares.

A provider turns one neutral `ChatRequest` into exactly one HTTP request: canary counts
attempts itself, so nothing below may retry, and nothing may leak the SDK's own types."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from canary.config.models import ResolvedModel
from canary.errors import SetupError
from canary.records import ChatRequest, ChatResponse, ToolCall

PLACEHOLDER_KEY = "unused"  # keyless gateways and the simulator still need *some* key for the SDKs

# Set by the adapters themselves; a params entry for one of these would silently break the call.
RESERVED_PARAMS = frozenset({"model", "messages", "system", "tools", "stream", "stream_options"})


@runtime_checkable
class Provider(Protocol):
    """One model behind one shared SDK client."""

    model: ResolvedModel

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Make exactly one HTTP request; raise `ProviderError` on any service failure."""
        ...

    async def aclose(self) -> None: ...


def check_params(model: ResolvedModel) -> None:
    """Refuse params that would fight the adapter, at build time rather than mid-run."""
    clash = sorted(RESERVED_PARAMS & set(model.params))
    if clash:
        raise SetupError(
            f"model {model.config.id}: params {', '.join(clash)} are set by canary itself "
            "(use the model's `stream:` setting and the canary files instead)"
        )


def split_params(
    params: Mapping[str, Any], native: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split params into SDK keyword arguments (`native` maps param name -> SDK argument)
    and an `extra_body` that reaches the API unchanged, so new vendor options need no code."""
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in params.items():
        if key in native:
            kwargs[native[key]] = value
        else:
            extra[key] = value
    return kwargs, extra


def parse_tool_arguments(raw: str) -> dict[str, Any] | None:
    """Arguments as the model sent them; None unless they are a JSON object (a scorer fails that)."""
    if raw.strip() == "":
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def tool_call(id_: str, name: str, raw: str) -> ToolCall:
    return ToolCall(id=id_, name=name, arguments=parse_tool_arguments(raw), raw_arguments=raw)


def arguments_json(call: ToolCall) -> str:
    """The arguments to echo back in a follow-up request: exactly what the model sent."""
    if call.raw_arguments:
        return call.raw_arguments
    return json.dumps(call.arguments or {}, ensure_ascii=False)


def http_client(sdk: ModuleType, model: ResolvedModel, base_url: str) -> Any:
    """The SDK's own HTTP client, with a pool sized for the model's concurrency (the SDK
    default is 1000) and, for a loopback URL such as the simulator's, no environment proxy.

    Both SDKs ship an aiohttp transport (`DefaultAioHttpClient`); we prefer it because the
    default httpcore pool scans every pooled connection on every request, which made 100
    concurrent requests cost ~6 ms of CPU each here (benchmarks/throughput.py: 2.7 s vs 1.7 s
    for 400 requests). If the transport is unavailable the httpx2 client is used."""
    import httpx2

    host = httpx2.URL(base_url).host
    factory = sdk.DefaultAsyncHttpxClient
    try:
        import aiohttp  # noqa: F401  (the SDK's aiohttp transport needs it)

        factory = sdk.DefaultAioHttpClient
    except ImportError:
        pass
    return factory(
        limits=httpx2.Limits(max_connections=model.concurrency, max_keepalive_connections=model.concurrency),
        timeout=model.timeout_s,
        trust_env=not is_loopback(host),
        event_hooks={"response": [cap_error_body]},
    )


MAX_ERROR_BODY = 65_536  # bytes of an error response (status >= 400) read; the SDKs would read it all


async def cap_error_body(response: Any) -> None:
    """The SDKs read a whole error body into memory before raising; a server answering 503 with
    100 MB must not cost 100 MB, so only the first MAX_ERROR_BODY bytes are ever read."""
    if response.status_code >= 400:
        response.stream = _capped_stream(response.stream, MAX_ERROR_BODY)


def _capped_stream(inner: Any, limit: int) -> Any:
    """An httpx2 async byte stream that ends after `limit` bytes."""
    import httpx2

    class CappedStream(httpx2.AsyncByteStream):
        async def __aiter__(self) -> Any:
            seen = 0
            async for chunk in inner:
                chunk = chunk[: limit - seen]
                seen += len(chunk)
                if chunk:
                    yield chunk
                if seen >= limit:
                    break

        async def aclose(self) -> None:
            await inner.aclose()

    return CappedStream()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
