"""OpenAI and OpenAI-compatible gateways through the official `openai` SDK's Chat Completions API."""

from __future__ import annotations

from typing import Any

from canary.config.models import ResolvedModel
from canary.providers.base import arguments_json, split_params, tool_call
from canary.providers.errors import mid_stream
from canary.providers.sdk import Progress, SdkProvider
from canary.records import ChatRequest, ChatResponse, Message, ToolCall

DEFAULT_BASE_URL = "https://api.openai.com/v1"  # explicit, so OPENAI_BASE_URL cannot redirect the key
NATIVE = {"max_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p",
          "stop": "stop", "stop_sequences": "stop"}  # fmt: skip


def token_params(params: dict[str, Any]) -> dict[str, Any]:
    """Newer OpenAI models refuse `max_tokens`: with `max_completion_tokens` in params (a number,
    or `true` to reuse max_tokens' value) only that is sent."""
    params = dict(params)
    if "max_completion_tokens" in params:
        value = params.pop("max_completion_tokens")
        limit = params.pop("max_tokens", None)
        if value is True:
            value = limit
        if value is not None and value is not False:
            params["max_completion_tokens"] = value
    return params


def to_messages(system: str | None, messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for msg in messages:
        if msg.role == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": msg.text or None}
            if msg.tool_calls:
                entry["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": arguments_json(c)}}
                    for c in msg.tool_calls
                ]
            out.append(entry)
        elif msg.role == "tool":
            out.append({"role": "tool", "tool_call_id": msg.tool_call_id or "", "content": msg.text})
        else:
            out.append({"role": "user", "content": msg.text})
    return out


class StreamAccumulator:
    """Builds the answer from chunks; tool arguments stay raw text until the end."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.input_tokens = 0
        self.output_tokens = 0
        self.model: str | None = None
        self.fingerprint: str | None = None
        self.stop_reason: str | None = None

    def feed(self, chunk: Any) -> None:
        self.model = getattr(chunk, "model", None) or self.model
        self.fingerprint = getattr(chunk, "system_fingerprint", None) or self.fingerprint
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.input_tokens = getattr(usage, "prompt_tokens", 0) or 0
            self.output_tokens = getattr(usage, "completion_tokens", 0) or 0
        for choice in getattr(chunk, "choices", None) or []:
            if getattr(choice, "index", 0) != 0:
                continue
            self.stop_reason = getattr(choice, "finish_reason", None) or self.stop_reason
            delta = choice.delta
            if delta is None:
                continue
            if getattr(delta, "content", None):
                self.text.append(delta.content)
            for part in getattr(delta, "tool_calls", None) or []:
                index = part.index if part.index is not None else len(self.calls)
                entry = self.calls.setdefault(index, {"id": "", "name": "", "args": []})
                if part.id:
                    entry["id"] = part.id
                function = part.function
                if function is not None:
                    if function.name:
                        entry["name"] += function.name
                    if function.arguments:
                        entry["args"].append(function.arguments)

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(tool_call(c["id"], c["name"], "".join(c["args"])) for _, c in sorted(self.calls.items()))


def _tool_calls_of(message: Any) -> tuple[ToolCall, ...]:
    calls = []
    for call in getattr(message, "tool_calls", None) or []:
        function = getattr(call, "function", None)
        if function is None:
            continue
        calls.append(tool_call(call.id, function.name, function.arguments or ""))
    return tuple(calls)


class OpenAIProvider(SdkProvider):
    """One model, one shared AsyncOpenAI client, one HTTP request per `complete`."""

    def __init__(
        self,
        model: ResolvedModel,
        *,
        api_key: str | None,
        base_url: str | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        import openai

        super().__init__(
            model, api_key, sdk=openai, client_class=openai.AsyncOpenAI, base_url=base_url, default_url=DEFAULT_BASE_URL,
            extra_headers=extra_headers,
        )
        # The SDK fills these from OPENAI_ADMIN_KEY / OPENAI_ORG_ID / OPENAI_PROJECT_ID; only the
        # configured key is ours to use, and account ids must not travel to third-party gateways.
        self._client.admin_api_key = None
        if model.config.provider != "openai":
            self._client.organization = None
            self._client.project = None
        self._kwargs, self._extra_body = split_params(token_params(model.params), NATIVE)

    def _request_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model.config.model,
            "messages": to_messages(request.system, request.messages),
            **self._kwargs,
        }
        if request.tools:
            kwargs["tools"] = [
                {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
                for t in request.tools
            ]
        if self._extra_body:
            kwargs["extra_body"] = self._extra_body
        return kwargs

    async def _whole(self, kwargs: dict[str, Any], progress: Progress) -> ChatResponse:
        # The streaming-response wrapper returns at the headers, so a body cut short is told apart.
        async with self._client.chat.completions.with_streaming_response.create(**kwargs) as raw:
            progress.after_200 = True
            completion = await raw.parse()
        choices = getattr(completion, "choices", None) or []
        choice = choices[0] if choices else None
        message = getattr(choice, "message", None)
        usage = getattr(completion, "usage", None)
        return ChatResponse(
            text=(getattr(message, "content", None) or "") if message is not None else "",
            tool_calls=_tool_calls_of(message) if message is not None else (),
            input_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            output_tokens=getattr(usage, "completion_tokens", 0) or 0,
            served_model=getattr(completion, "model", None),
            stop_reason=getattr(choice, "finish_reason", None),
            fingerprint=getattr(completion, "system_fingerprint", None),
            latency_s=progress.elapsed(),
            request_id=raw.request_id,
        )

    async def _streamed(self, kwargs: dict[str, Any], progress: Progress) -> ChatResponse:
        stream = await self._client.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}
        )
        progress.after_200 = True
        acc = StreamAccumulator()
        async with stream:
            async for chunk in stream:
                acc.feed(chunk)
        if acc.stop_reason is None:
            raise mid_stream("end of stream before a finish_reason")
        return ChatResponse(
            text="".join(acc.text),
            tool_calls=acc.tool_calls(),
            input_tokens=acc.input_tokens,
            output_tokens=acc.output_tokens,
            served_model=acc.model,
            stop_reason=acc.stop_reason,
            fingerprint=acc.fingerprint,
            latency_s=progress.elapsed(),
            request_id=stream.response.headers.get("x-request-id"),
        )
