"""What both SDK adapters share: one shared client, one deadline, one classification path."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import ModuleType
from typing import Any

from canary.config.models import ResolvedModel
from canary.providers.base import PLACEHOLDER_KEY, check_params, http_client
from canary.providers.body import Excerpt, SseEvent, read_sse
from canary.providers.errors import BadBody, ErrorInStream, bad_response, classify, mid_stream
from canary.records import ChatRequest, ChatResponse, ProviderError


class Progress:
    """Whether the 200 headers arrived: a failure after that point is a mid-stream failure."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.after_200 = False

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class SdkProvider(ABC):
    """Subclasses build the vendor request and read the vendor response; this class makes sure
    every call is bounded by `timeout_s` in total (the SDK timeouts are per read, so a trickling
    stream could otherwise run forever) and fails only with `ProviderError`."""

    model: ResolvedModel
    _sdk: ModuleType
    _client: Any

    def __init__(
        self,
        model: ResolvedModel,
        api_key: str | None,
        *,
        sdk: ModuleType,
        client_class: Any,
        base_url: str | None,
        default_url: str,
        extra_headers: dict[str, str] | None,
    ) -> None:
        check_params(model)
        self.model = model
        self._key = api_key or PLACEHOLDER_KEY
        self._sdk = sdk
        # An override (the simulator's address) wins over the configured URL, then the vendor's.
        url = base_url or model.config.base_url or default_url
        # One client per model: its pool is the model's concurrency. SDK retries are off so
        # that one attempt is one request; an explicit key switches off credential discovery.
        self._client = client_class(
            api_key=self._key,
            base_url=url,
            max_retries=0,
            timeout=model.timeout_s,
            default_headers=extra_headers or None,
            http_client=http_client(sdk, model, url),
        )

    def __repr__(self) -> str:  # the default repr would be harmless, but make sure no key ever shows
        return f"{type(self).__name__}(model={self.model.config.id!r})"

    async def aclose(self) -> None:
        await self._client.close()

    async def complete(self, request: ChatRequest) -> ChatResponse:
        kwargs = self._request_kwargs(request)
        progress = Progress()
        try:
            async with asyncio.timeout(self.model.timeout_s):
                if self.model.stream:
                    return await self._streamed(kwargs, progress)
                return await self._whole(kwargs, progress)
        except Exception as exc:  # every failure is classified, or re-raised as a harness bug
            error = classify(exc, self._sdk, after_200=progress.after_200, secrets=(self._key,))
            if error is None:
                raise
        # Raised outside the handler so the SDK exception (whose text may echo a key) is not chained.
        raise error

    def bad(self, what: str, excerpt: Excerpt) -> ProviderError:
        """A 200 whose body is not the vendor's shape, with the body's start (redacted) kept."""
        return bad_response(what, excerpt.text((self._key,)), (self._key,))

    def mid_stream(self, what: str) -> ProviderError:
        return mid_stream(what, (self._key,))

    async def read_stream(
        self, raw: Any, feed: Callable[[SseEvent], bool], incomplete: Callable[[], str | None]
    ) -> None:
        """Feed a streamed reply's events to `feed` until it says the reply is complete, then ask
        `incomplete` what is missing (the closing event, ...). A body that is not an event stream
        of the vendor's shape is a `bad_response` with its start kept; an error event inside the
        200 is a mid-stream failure."""
        excerpt = Excerpt()
        try:
            async for event in read_sse(raw.iter_bytes(), excerpt, raw.headers.get("content-type")):
                if feed(event):
                    break
            missing = incomplete()
            if missing:
                raise BadBody(missing)
        except BadBody as exc:
            raise self.bad(str(exc), excerpt) from None
        except ErrorInStream as exc:
            raise self.mid_stream(str(exc)) from None

    @abstractmethod
    def _request_kwargs(self, request: ChatRequest) -> dict[str, Any]: ...

    @abstractmethod
    async def _whole(self, kwargs: dict[str, Any], progress: Progress) -> ChatResponse: ...

    @abstractmethod
    async def _streamed(self, kwargs: dict[str, Any], progress: Progress) -> ChatResponse: ...
