"""OpenAI and OpenAI-compatible gateways through the official `openai` SDK's Chat Completions API."""

from __future__ import annotations

from typing import Any

from canary.config.models import ResolvedModel
from canary.providers.base import arguments_json, split_params, tool_call
from canary.providers.body import (
    Budget,
    Excerpt,
    SseEvent,
    TextSink,
    any_cut,
    count,
    full_length,
    kind_of,
    need,
    read_json,
    text_or_empty,
    text_or_none,
)
from canary.providers.errors import BadBody, ErrorInStream, error_fields
from canary.providers.sdk import Progress, SdkProvider
from canary.records import ChatRequest, ChatResponse, Message, ToolCall

MAX_CALLS = 256  # tool calls in one reply: a real one has a handful
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
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": arguments_json(c)},
                    }
                    for c in msg.tool_calls
                ]
            out.append(entry)
        elif msg.role == "tool":
            out.append({"role": "tool", "tool_call_id": msg.tool_call_id or "", "content": msg.text})
        else:
            out.append({"role": "user", "content": msg.text})
    return out


class StreamAccumulator:
    """Builds the answer from parsed chunks; tool arguments stay raw text until the end. Text,
    refusal and arguments are kept within one `Budget`; a chunk not of the API's shape raises BadBody."""

    def __init__(self) -> None:
        self.budget = Budget()
        self.text = TextSink(self.budget)
        self.refusal = TextSink(self.budget)
        self.calls: dict[int, dict[str, Any]] = {}
        self.input_tokens = 0
        self.output_tokens = 0
        self.model: str | None = None
        self.fingerprint: str | None = None
        self.stop_reason: str | None = None
        self.done = False  # `data: [DONE]` seen

    def feed(self, event: SseEvent) -> None:
        if event.done:
            self.done = True
            return
        chunk = event.data
        if not isinstance(chunk, dict):
            raise BadBody(f"chunk is {kind_of(chunk)}, not an object")
        if chunk.get("error") or event.event == "error":
            _type, code, _detail, message = error_fields(chunk)
            label = _type or code or "error"
            raise ErrorInStream(f"{label}" + (f": {message}" if message else ""))
        self.model = text_or_none(chunk.get("model")) or self.model
        self.fingerprint = text_or_none(chunk.get("system_fingerprint")) or self.fingerprint
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.input_tokens = count(usage.get("prompt_tokens"))
            self.output_tokens = count(usage.get("completion_tokens"))
        choices = chunk.get("choices", [])
        if not isinstance(choices, list):
            raise BadBody("chunk has a malformed `choices`")
        for choice in choices:
            if not isinstance(choice, dict):
                raise BadBody("chunk has a malformed choice")
            if choice.get("index", 0) != 0:
                continue
            self.stop_reason = text_or_none(choice.get("finish_reason")) or self.stop_reason
            delta = choice.get("delta")
            if delta is None:
                continue
            if not isinstance(delta, dict):
                raise BadBody("choice has a malformed `delta`")
            if isinstance(delta.get("content"), str):
                self.text.add(delta["content"])
            if isinstance(delta.get("refusal"), str):
                self.refusal.add(delta["refusal"])
            parts = delta.get("tool_calls") or []
            if not isinstance(parts, list):
                raise BadBody("delta has a malformed `tool_calls`")
            for part in parts:
                if not isinstance(part, dict):
                    raise BadBody("delta has a malformed tool call")
                index = part["index"] if isinstance(part.get("index"), int) else len(self.calls)
                if index not in self.calls and len(self.calls) >= MAX_CALLS:
                    raise BadBody(f"more than {MAX_CALLS} tool calls")
                entry = self.calls.setdefault(index, {"id": "", "name": "", "args": TextSink(self.budget)})
                if isinstance(part.get("id"), str) and part["id"]:
                    entry["id"] = str(part["id"])[:256]
                function = part.get("function")
                if isinstance(function, dict):
                    if isinstance(function.get("name"), str):
                        entry["name"] = (entry["name"] + str(function["name"]))[:256]
                    if isinstance(function.get("arguments"), str):
                        entry["args"].add(function["arguments"])

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(tool_call(c["id"], c["name"], c["args"].value()) for _, c in sorted(self.calls.items()))

    def cut(self) -> bool:
        return self.text.cut or self.refusal.cut or any(c["args"].cut for c in self.calls.values())


def _tool_calls_of(message: dict[str, Any]) -> tuple[ToolCall, ...]:
    calls = []
    raw_calls = message.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise BadBody("message has a malformed `tool_calls`")
    for call in raw_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise BadBody("message has a malformed tool call")
        name = need(function, "name", str, "tool call function")
        args = function.get("arguments")
        calls.append(tool_call(text_or_empty(call.get("id")), name, args if isinstance(args, str) else ""))
    return tuple(calls)


def completion_of(body: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(completion, first choice, its message) checked for the fields canary reads; BadBody otherwise."""
    if not isinstance(body, dict):
        raise BadBody(f"body is {kind_of(body)}, not a chat completion object")
    if body.get("error"):
        _type, code, _detail, message = error_fields(body)
        raise BadBody(
            f"an error body with status 200: {_type or code or 'error'}" + (f": {message}" if message else "")
        )
    choices = need(body, "choices", list, "completion")
    if not choices:
        raise BadBody("completion has no choices")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise BadBody("completion.choices[0] is not an object")
    message = need(choice, "message", dict, "choices[0]")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise BadBody("choices[0].message has a malformed `content`")
    # A missing finish_reason is read as null (some gateways drop it); the message is the reply.
    return body, choice, message


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
            model,
            api_key,
            sdk=openai,
            client_class=openai.AsyncOpenAI,
            base_url=base_url,
            default_url=DEFAULT_BASE_URL,
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
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in request.tools
            ]
        if self._extra_body:
            kwargs["extra_body"] = self._extra_body
        return kwargs

    async def _whole(self, kwargs: dict[str, Any], progress: Progress) -> ChatResponse:
        # The streaming-response wrapper returns at the headers; canary reads the body itself,
        # with bounded memory (canary.providers.body), and checks its shape.
        async with self._client.chat.completions.with_streaming_response.create(**kwargs) as raw:
            progress.after_200 = True
            excerpt = Excerpt()
            try:
                completion, choice, message = completion_of(await read_json(raw.iter_bytes(), excerpt))
                calls = _tool_calls_of(message)
            except BadBody as exc:
                raise self.bad(str(exc), excerpt) from None
            request_id = raw.headers.get("x-request-id")
        usage = completion.get("usage") if isinstance(completion.get("usage"), dict) else {}
        text = text_or_empty(message.get("content"))
        refusal = text_or_none(message.get("refusal"))
        return ChatResponse(
            text=str(text),
            tool_calls=calls,
            input_tokens=count(usage.get("prompt_tokens")),
            output_tokens=count(usage.get("completion_tokens")),
            served_model=text_or_none(completion.get("model")),
            stop_reason=text_or_none(choice.get("finish_reason")),
            fingerprint=text_or_none(completion.get("system_fingerprint")),
            latency_s=progress.elapsed(),
            request_id=request_id,
            text_chars=full_length(text),
            cut=any_cut(message),
            refusal=refusal or None,
        )

    async def _streamed(self, kwargs: dict[str, Any], progress: Progress) -> ChatResponse:
        options = {"include_usage": True}
        create = self._client.chat.completions.with_streaming_response.create
        async with create(**kwargs, stream=True, stream_options=options) as raw:
            progress.after_200 = True
            acc = StreamAccumulator()

            def feed(event: SseEvent) -> bool:
                acc.feed(event)
                return acc.done

            def incomplete() -> str | None:
                # The stream's closing event is `data: [DONE]`; a finish_reason alone also ends it
                # (some gateways never send [DONE]). Neither: the stream was cut short.
                return (
                    "stream ended before a finish_reason or [DONE]"
                    if acc.stop_reason is None and not acc.done
                    else None
                )

            await self.read_stream(raw, feed, incomplete)
            request_id = raw.headers.get("x-request-id")
        text = acc.text.value()
        refusal = acc.refusal.value()
        return ChatResponse(
            text=str(text),
            tool_calls=acc.tool_calls(),
            input_tokens=acc.input_tokens,
            output_tokens=acc.output_tokens,
            served_model=acc.model,
            stop_reason=acc.stop_reason,
            fingerprint=acc.fingerprint,
            latency_s=progress.elapsed(),
            request_id=request_id,
            text_chars=full_length(text),
            cut=acc.cut(),
            refusal=str(refusal) or None,
        )
