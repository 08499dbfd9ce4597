"""Claude through the official `anthropic` SDK's Messages API (also the simulator's Anthropic wire)."""

from __future__ import annotations

import json
from typing import Any

from canary.config.models import ResolvedModel
from canary.providers.base import split_params, tool_call
from canary.providers.errors import mid_stream
from canary.providers.sdk import Progress, SdkProvider
from canary.records import ChatRequest, ChatResponse, Message, ToolCall

DEFAULT_BASE_URL = "https://api.anthropic.com"  # explicit, so ANTHROPIC_BASE_URL cannot redirect the key
DEFAULT_MAX_TOKENS = 1024  # the Messages API refuses a request without it
# This SDK version dropped `temperature`/`top_p` from `create()`; they travel in extra_body instead,
# which puts them at the top level of the request body exactly as the API expects.
NATIVE = {"max_tokens": "max_tokens", "stop_sequences": "stop_sequences", "stop": "stop_sequences"}
REASONING_TYPES = ("thinking", "redacted_thinking")


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
                blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": _input_of(call)})
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
    """Builds the answer from raw stream events, keeping invalid tool JSON instead of failing on it."""

    def __init__(self) -> None:
        self.blocks: dict[int, dict[str, Any]] = {}
        self.input_tokens = 0
        self.output_tokens = 0
        self.model: str | None = None
        self.stop_reason: str | None = None
        self.finished = False  # message_stop seen: anything less is a stream cut short

    def feed(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind == "message_stop":
            self.finished = True
        elif kind == "message_start":
            message = event.message
            self.model = getattr(message, "model", None)
            self._usage(getattr(message, "usage", None))
        elif kind == "content_block_start":
            block = event.content_block
            entry: dict[str, Any] = {"type": getattr(block, "type", None), "text": getattr(block, "text", "") or ""}
            if entry["type"] == "tool_use":
                entry.update(id=block.id, name=block.name, partial=[], input=getattr(block, "input", None))
            elif entry["type"] in REASONING_TYPES:
                entry["block"] = _reasoning_block(block)
            self.blocks[event.index] = entry
        elif kind == "content_block_delta":
            entry = self.blocks.setdefault(event.index, {"type": "text", "text": ""})
            delta = event.delta
            if delta.type == "text_delta":
                entry["text"] += delta.text
            elif delta.type == "input_json_delta":
                entry.setdefault("partial", []).append(delta.partial_json)
            elif delta.type == "thinking_delta" and "block" in entry:
                entry["block"]["thinking"] += delta.thinking
            elif delta.type == "signature_delta" and "block" in entry:
                entry["block"]["signature"] = delta.signature  # sent whole, just before the block stops
        elif kind == "message_delta":
            self.stop_reason = getattr(event.delta, "stop_reason", None) or self.stop_reason
            self._usage(getattr(event, "usage", None))

    def _usage(self, usage: Any) -> None:
        if usage is None:
            return
        self.input_tokens = getattr(usage, "input_tokens", None) or self.input_tokens
        self.output_tokens = getattr(usage, "output_tokens", None) or self.output_tokens

    def text(self) -> str:
        return "".join(b["text"] for _, b in sorted(self.blocks.items()) if b["type"] == "text")

    def reasoning(self) -> tuple[dict[str, Any], ...]:
        return tuple(b["block"] for _, b in sorted(self.blocks.items()) if "block" in b)

    def tool_calls(self) -> tuple[ToolCall, ...]:
        calls = []
        for _, b in sorted(self.blocks.items()):
            if b["type"] != "tool_use":
                continue
            if b["partial"]:
                raw = "".join(b["partial"])
            else:
                raw = json.dumps(b["input"]) if isinstance(b["input"], dict) else ""
            calls.append(tool_call(b["id"], b["name"], raw))
        return tuple(calls)


def _reasoning_block(block: Any) -> dict[str, Any]:
    """A thinking block as the API wants it back: only its own fields, exactly as received."""
    if block.type == "redacted_thinking":
        return {"type": "redacted_thinking", "data": getattr(block, "data", "") or ""}
    return {
        "type": "thinking",
        "thinking": getattr(block, "thinking", "") or "",
        "signature": getattr(block, "signature", "") or "",
    }


def _reasoning_of(content: Any) -> tuple[dict[str, Any], ...]:
    return tuple(_reasoning_block(b) for b in content if getattr(b, "type", None) in REASONING_TYPES)


def _tool_calls_of(content: Any) -> tuple[ToolCall, ...]:
    calls = []
    for block in content:
        if getattr(block, "type", None) != "tool_use":
            continue
        value = block.input
        raw = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        calls.append(tool_call(block.id, block.name, raw))
    return tuple(calls)


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
            model, api_key, sdk=anthropic, client_class=anthropic.AsyncAnthropic, base_url=base_url, default_url=DEFAULT_BASE_URL,
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
                {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in request.tools
            ]
        if self._extra_body:
            kwargs["extra_body"] = self._extra_body
        return kwargs

    async def _whole(self, kwargs: dict[str, Any], progress: Progress) -> ChatResponse:
        # The streaming-response wrapper returns at the headers, so a body cut short is told apart.
        async with self._client.messages.with_streaming_response.create(**kwargs) as raw:
            progress.after_200 = True
            message = await raw.parse()
        content = message.content or []
        usage = message.usage
        return ChatResponse(
            text="".join(getattr(b, "text", "") or "" for b in content if getattr(b, "type", None) == "text"),
            tool_calls=_tool_calls_of(content),
            input_tokens=getattr(usage, "input_tokens", 0) or 0,
            output_tokens=getattr(usage, "output_tokens", 0) or 0,
            served_model=message.model,
            stop_reason=message.stop_reason,
            fingerprint=None,
            latency_s=progress.elapsed(),
            request_id=raw.request_id,
            reasoning=_reasoning_of(content),
        )

    async def _streamed(self, kwargs: dict[str, Any], progress: Progress) -> ChatResponse:
        stream = await self._client.messages.create(**kwargs, stream=True)
        progress.after_200 = True
        acc = StreamAccumulator()
        async with stream:
            async for event in stream:
                acc.feed(event)
        if not acc.finished:
            raise mid_stream("end of stream before message_stop")
        return ChatResponse(
            text=acc.text(),
            tool_calls=acc.tool_calls(),
            input_tokens=acc.input_tokens,
            output_tokens=acc.output_tokens,
            served_model=acc.model,
            stop_reason=acc.stop_reason,
            fingerprint=None,
            latency_s=progress.elapsed(),
            request_id=stream.response.headers.get("request-id"),
            reasoning=acc.reasoning(),
        )
