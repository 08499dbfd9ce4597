"""Claude through the official `anthropic` SDK's Messages API (also the simulator's Anthropic wire)."""

from __future__ import annotations

import json
from typing import Any

from canary.config.models import ResolvedModel
from canary.providers.base import split_params, tool_call
from canary.providers.body import (
    Budget,
    Excerpt,
    SseEvent,
    TextSink,
    any_cut,
    count,
    full_length,
    join_texts,
    kind_of,
    need,
    read_json,
    text_or_empty,
    text_or_none,
)
from canary.providers.errors import BadBody, ErrorInStream, error_fields
from canary.providers.sdk import Progress, SdkProvider
from canary.records import ChatRequest, ChatResponse, Message, ToolCall

DEFAULT_BASE_URL = "https://api.anthropic.com"  # explicit, so ANTHROPIC_BASE_URL cannot redirect the key
DEFAULT_MAX_TOKENS = 1024  # the Messages API refuses a request without it
# This SDK version dropped `temperature`/`top_p` from `create()`; they travel in extra_body instead,
# which puts them at the top level of the request body exactly as the API expects.
NATIVE = {"max_tokens": "max_tokens", "stop_sequences": "stop_sequences", "stop": "stop_sequences"}
REASONING_TYPES = ("thinking", "redacted_thinking")
MAX_BLOCKS = 256  # content blocks in one reply: a real one has a handful


def to_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Neutral messages as Messages API turns; tool results become user `tool_result` blocks,
    merged into one user turn as the API requires after a multi-tool assistant turn. An assistant
    turn's thinking blocks go first and unchanged: with extended thinking on, the API refuses a
    tool-use continuation whose assistant turn lost them."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        if msg.role == "assistant":
            blocks: list[dict[str, Any]] = [dict(b) for b in msg.reasoning]
            if msg.text:
                blocks.append({"type": "text", "text": msg.text})
            for call in msg.tool_calls:
                blocks.append(
                    {"type": "tool_use", "id": call.id, "name": call.name, "input": _input_of(call)}
                )
            role, content = "assistant", blocks or [{"type": "text", "text": ""}]
        elif msg.role == "tool":
            role = "user"
            content = [{"type": "tool_result", "tool_use_id": msg.tool_call_id or "", "content": msg.text}]
        else:
            role, content = "user", [{"type": "text", "text": msg.text}]
        if out and out[-1]["role"] == role == "user":
            out[-1]["content"].extend(content)
        else:
            out.append({"role": role, "content": content})
    return out


def _input_of(call: ToolCall) -> dict[str, Any]:
    """The API needs an object; a call whose arguments were not one is echoed as an empty input."""
    return call.arguments if call.arguments is not None else {}


class StreamAccumulator:
    """Builds the answer from raw stream events (parsed JSON), keeping invalid tool JSON instead
    of failing on it. Text, tool input and thinking are kept within one `Budget`; an event
    that is not the Messages API's shape raises BadBody."""

    def __init__(self) -> None:
        self.budget = Budget()
        self.blocks: dict[int, dict[str, Any]] = {}
        self.input_tokens = 0
        self.output_tokens = 0
        self.model: str | None = None
        self.stop_reason: str | None = None
        self.started = False
        self.finished = False  # message_stop seen: anything less is a stream cut short

    def feed(self, event: SseEvent) -> None:
        data = event.data
        if event.done:
            raise BadBody("`[DONE]` in a Messages API stream")
        if not isinstance(data, dict):
            raise BadBody(f"event data is {kind_of(data)}, not an object")
        kind = data.get("type") or event.event
        if kind == "error" or event.event == "error":
            type_, code, _detail, message = error_fields(data)
            label = type_ if type_ and type_ != "error" else code or "error"
            raise ErrorInStream(f"{label}" + (f": {message}" if message else ""))
        if kind == "message_stop":
            self.finished = True
        elif kind == "message_start":
            message = need(data, "message", dict, kind)
            self.started = True
            self.model = text_or_none(message.get("model"))
            self._usage(message.get("usage"))
        elif kind == "content_block_start":
            index = need(data, "index", int, kind)
            block = need(data, "content_block", dict, kind)
            btype = need(block, "type", str, f"{kind}.content_block")
            entry = self._entry(index, btype)
            if btype == "text":
                entry["text"].add(text_or_empty(block.get("text")))
            elif btype == "tool_use":
                entry["id"] = need(block, "id", str, "tool_use")[:256]
                entry["name"] = need(block, "name", str, "tool_use")[:256]
                value = block.get("input")
                if isinstance(value, dict) and value:  # real streams start with {} and send deltas
                    entry["start"].add(json.dumps(value, ensure_ascii=False))
            elif btype in REASONING_TYPES:
                for name in ("thinking", "data", "signature"):
                    entry[name].add(text_or_empty(block.get(name)))
        elif kind == "content_block_delta":
            index = need(data, "index", int, kind)
            delta = need(data, "delta", dict, kind)
            dtype = need(delta, "type", str, f"{kind}.delta")
            entry = self.blocks.get(index) or self._entry(index, "text")
            if dtype == "text_delta":
                entry["text"].add(need(delta, "text", str, dtype))
            elif dtype == "input_json_delta" and entry["type"] == "tool_use":
                entry["partial"].add(need(delta, "partial_json", str, dtype))
            elif dtype == "thinking_delta" and entry["type"] == "thinking":
                entry["thinking"].add(need(delta, "thinking", str, dtype))
            elif dtype == "signature_delta" and entry["type"] == "thinking":
                entry["signature"] = TextSink(self.budget)  # sent whole, just before the block stops
                entry["signature"].add(need(delta, "signature", str, dtype))
        elif kind == "message_delta":
            delta = need(data, "delta", dict, kind)
            self.stop_reason = text_or_none(delta.get("stop_reason")) or self.stop_reason
            self._usage(data.get("usage"))

    def _entry(self, index: int, btype: str) -> dict[str, Any]:
        """A new block; everything it keeps is text within the shared budget, and blocks are few."""
        if index not in self.blocks and len(self.blocks) >= MAX_BLOCKS:
            raise BadBody(f"more than {MAX_BLOCKS} content blocks")
        sink = lambda: TextSink(self.budget)  # noqa: E731
        entry: dict[str, Any] = {"type": btype, "text": sink(), "id": "", "name": "", "partial": sink(),
                                 "start": sink(), "thinking": sink(), "data": sink(), "signature": sink()}  # fmt: skip
        self.blocks[index] = entry
        return entry

    def _usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        self.input_tokens = count(usage.get("input_tokens")) or self.input_tokens
        self.output_tokens = count(usage.get("output_tokens")) or self.output_tokens

    def text(self) -> str:
        return join_texts(b["text"].value() for _, b in sorted(self.blocks.items()) if b["type"] == "text")

    def reasoning(self) -> tuple[dict[str, Any], ...]:
        """Thinking blocks as the API wants them back: only their own fields, as received."""
        out: list[dict[str, Any]] = []
        for _, b in sorted(self.blocks.items()):
            if b["type"] == "redacted_thinking":
                out.append({"type": "redacted_thinking", "data": str(b["data"].value())})
            elif b["type"] == "thinking":
                out.append(
                    {
                        "type": "thinking",
                        "thinking": str(b["thinking"].value()),
                        "signature": str(b["signature"].value()),
                    }
                )
        return tuple(out)

    def tool_calls(self) -> tuple[ToolCall, ...]:
        calls = []
        for _, b in sorted(self.blocks.items()):
            if b["type"] == "tool_use":
                raw = b["partial"].value() if b["partial"].chars else b["start"].value()
                calls.append(tool_call(b["id"], b["name"], raw))
        return tuple(calls)

    def cut(self) -> bool:
        return any(
            sink.cut for b in self.blocks.values() for sink in b.values() if isinstance(sink, TextSink)
        )


def _reasoning_block(block: dict[str, Any]) -> dict[str, Any]:
    """A thinking block as the API wants it back: only its own fields, exactly as received."""
    if block.get("type") == "redacted_thinking":
        return {"type": "redacted_thinking", "data": str(text_or_empty(block.get("data")))}
    return {
        "type": "thinking",
        "thinking": str(text_or_empty(block.get("thinking"))),
        "signature": str(text_or_empty(block.get("signature"))),
    }


def message_of(body: Any) -> dict[str, Any]:
    """The Messages API reply in `body`, checked for the fields canary reads; BadBody otherwise."""
    if not isinstance(body, dict):
        raise BadBody(f"body is {kind_of(body)}, not a Messages API object")
    if body.get("type") == "error":
        type_, code, _detail, message = error_fields(body)
        raise BadBody(
            f"an error body with status 200: {type_ or code or 'error'}" + (f": {message}" if message else "")
        )
    content = need(body, "content", list, "message")
    for index, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise BadBody(f"message.content[{index}] is not a content block")
        if block["type"] == "text":
            need(block, "text", str, f"content[{index}]")
        elif block["type"] == "tool_use":
            need(block, "id", str, f"content[{index}]")
            need(block, "name", str, f"content[{index}]")
    # A missing stop_reason is read as null: gateways that translate the API do drop it, and the
    # content is there to judge. What makes a body the vendor's shape is its content blocks.
    return body


class AnthropicProvider(SdkProvider):
    """One model, one shared AsyncAnthropic client, one HTTP request per `complete`."""

    def __init__(
        self,
        model: ResolvedModel,
        *,
        api_key: str | None,
        base_url: str | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        import anthropic

        # An explicit api_key switches off the SDK's environment, profile and federation lookups.
        super().__init__(
            model,
            api_key,
            sdk=anthropic,
            client_class=anthropic.AsyncAnthropic,
            base_url=base_url,
            default_url=DEFAULT_BASE_URL,
            extra_headers=extra_headers,
        )
        params = dict(model.params)
        params.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        self._kwargs, self._extra_body = split_params(params, NATIVE)

    def _request_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model.config.model,
            "messages": to_messages(request.messages),
            **self._kwargs,
        }
        if request.system:
            kwargs["system"] = request.system
        if request.tools:
            kwargs["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        if self._extra_body:
            kwargs["extra_body"] = self._extra_body
        return kwargs

    async def _whole(self, kwargs: dict[str, Any], progress: Progress) -> ChatResponse:
        # The streaming-response wrapper returns at the headers; canary reads the body itself,
        # with bounded memory (canary.providers.body), and checks its shape.
        async with self._client.messages.with_streaming_response.create(**kwargs) as raw:
            progress.after_200 = True
            excerpt = Excerpt()
            try:
                message = message_of(await read_json(raw.iter_bytes(), excerpt))
            except BadBody as exc:
                raise self.bad(str(exc), excerpt) from None
            request_id = raw.headers.get("request-id")
        content = message["content"]
        texts = [b["text"] for b in content if b["type"] == "text"]
        calls = []
        for block in content:
            if block["type"] == "tool_use":
                value = block.get("input")
                raw_args = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                calls.append(tool_call(block["id"], block["name"], raw_args))
        usage = message.get("usage") if isinstance(message.get("usage"), dict) else {}
        text = join_texts(texts)
        return ChatResponse(
            text=str(text),
            tool_calls=tuple(calls),
            input_tokens=count(usage.get("input_tokens")),
            output_tokens=count(usage.get("output_tokens")),
            served_model=text_or_none(message.get("model")),
            stop_reason=text_or_none(message.get("stop_reason")),
            fingerprint=None,
            latency_s=progress.elapsed(),
            request_id=request_id,
            reasoning=tuple(_reasoning_block(b) for b in content if b["type"] in REASONING_TYPES),
            text_chars=full_length(text),
            cut=any_cut(content),
        )

    async def _streamed(self, kwargs: dict[str, Any], progress: Progress) -> ChatResponse:
        async with self._client.messages.with_streaming_response.create(**kwargs, stream=True) as raw:
            progress.after_200 = True
            acc = StreamAccumulator()

            def feed(event: SseEvent) -> bool:
                acc.feed(event)
                return acc.finished

            def incomplete() -> str | None:
                if not acc.finished:
                    return "stream ended before message_stop"
                return None if acc.started else "stream lacks message_start"

            await self.read_stream(raw, feed, incomplete)
            request_id = raw.headers.get("request-id")
        text = acc.text()
        return ChatResponse(
            text=str(text),
            tool_calls=acc.tool_calls(),
            input_tokens=acc.input_tokens,
            output_tokens=acc.output_tokens,
            served_model=acc.model,
            stop_reason=acc.stop_reason,
            fingerprint=None,
            latency_s=progress.elapsed(),
            request_id=request_id,
            reasoning=acc.reasoning(),
            text_chars=full_length(text),
            cut=acc.cut(),
        )
