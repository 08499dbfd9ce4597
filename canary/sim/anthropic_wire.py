"""The Anthropic Messages dialect (`POST /v1/messages`), as the official SDK parses it.

The SDK ignores SSE frames without an `event:` line, so every frame names its event."""

from __future__ import annotations

import json
from typing import Any

from canary.sim.replies import Reply, pieces
from canary.sim.request import SimRequest, WireError, as_int
from canary.sim.state import Effective
from canary.sim.wire import block_text, dumps, new_id, text_len

STOP_REASONS = {
    "end": "end_turn",
    "tool": "tool_use",
    "length": "max_tokens",
    "refusal": "refusal",
    "filtered": "refusal",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# The SDK maps (429, error.details.error_code) to EnforcedSpendLimitReachedError, a RateLimitError subclass.
QUOTA_CODE = "enforced_spend_limit_reached"
THINKING_TEXT = "Let me work out what is being asked before I answer."
MIN_BUDGET = 1024
REASONING_TYPES = ("thinking", "redacted_thinking")


def frame(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


class AnthropicWire:
    request_id_header = "request-id"

    def parse(self, body: dict[str, Any]) -> SimRequest:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise WireError(400, "model: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise WireError(400, "messages: Field required")
        max_tokens = as_int(body.get("max_tokens"))
        if max_tokens is None or max_tokens < 1:
            raise WireError(400, "max_tokens: Field required (an integer >= 1)")
        thinking = _thinking_enabled(body.get("thinking"), max_tokens)
        chars = text_len(body.get("system"))
        first: str | None = None
        turns = 0
        after_tool = False
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                raise WireError(400, f"messages.{index}: Input should be a valid dictionary")
            content = message.get("content")
            if thinking and message.get("role") == "assistant":
                _check_thinking_kept(index, content)
            chars += _content_chars(content)
            text = block_text(content)
            is_user = message.get("role") == "user"
            if is_user and text is not None:
                turns += 1
                if first is None:
                    first = text
            after_tool = is_user and _has_tool_result(content)
        return SimRequest(
            model=model,
            first_user_text=first,
            user_turns=turns,
            after_tool_result=after_tool,
            input_chars=chars,
            stream=body.get("stream") is True,
            max_tokens=max_tokens,
            tool_names=_tool_names(body.get("tools")),
            thinking=thinking,
        )

    def error(self, status: int, message: str) -> dict[str, Any]:
        etype = ERROR_TYPES.get(status, "api_error")
        return {
            "type": "error",
            "error": {"type": etype, "message": message},
            "request_id": new_id("req_sim_"),
        }

    def quota(self) -> dict[str, Any]:
        body = self.error(429, "You have reached your specified API usage limits. Please try again later.")
        body["error"]["details"] = {"error_code": QUOTA_CODE}
        return body

    def not_found(self, model: str) -> dict[str, Any]:
        return self.error(404, f"model: {model}")

    def response(self, reply: Reply, req: SimRequest, eff: Effective) -> dict[str, Any]:
        if reply.call_name is not None:
            # Broken arguments cannot be a JSON object, so they travel as a string `input`;
            # the SDK builds models without validation and hands the string through.
            tool_input: Any = reply.arguments if reply.arguments is not None else reply.raw_arguments
            content = [
                {"type": "tool_use", "id": new_id("toolu_sim_"), "name": reply.call_name, "input": tool_input}
            ]
        else:
            content = [{"type": "text", "text": reply.text}]
        if req.thinking:
            content.insert(0, {"type": "thinking", "thinking": THINKING_TEXT, "signature": new_id("sig-")})
        return {
            **_message_head(req, eff, reply.input_tokens, reply.output_tokens),
            "content": content,
            "stop_reason": STOP_REASONS[reply.stop],
        }

    def frames(self, reply: Reply, req: SimRequest, eff: Effective, *, broken: bool = False) -> list[bytes]:
        start = {**_message_head(req, eff, reply.input_tokens, 1), "content": [], "stop_reason": None}
        out = [frame("message_start", {"type": "message_start", "message": start})]
        out.append(frame("ping", {"type": "ping"}))
        index = 0
        if req.thinking:
            out.extend(_thinking_frames(index))
            index += 1
        if reply.call_name is not None:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": new_id("toolu_sim_"),
                "name": reply.call_name,
                "input": {},
            }
            deltas = [
                {"type": "input_json_delta", "partial_json": p}
                for p in pieces(reply.raw_arguments or "", 4, 8)
            ]
        else:
            block = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in pieces(reply.text, 8, 24)]
        out.append(
            frame(
                "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
            )
        )
        for delta in deltas:
            out.append(
                frame("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            )
            if broken:
                break
        if broken:
            error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            out.append(frame("error", error))
            return out
        out.append(frame("content_block_stop", {"type": "content_block_stop", "index": index}))
        stop = {"stop_reason": STOP_REASONS[reply.stop], "stop_sequence": None}
        usage = {"output_tokens": reply.output_tokens}
        out.append(frame("message_delta", {"type": "message_delta", "delta": stop, "usage": usage}))
        out.append(frame("message_stop", {"type": "message_stop"}))
        return out


def _thinking_frames(index: int) -> list[bytes]:
    """A thinking block as the API streams it: empty start, text deltas, the signature last."""
    block = {"type": "thinking", "thinking": "", "signature": ""}
    deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces(THINKING_TEXT, 3, 8)]
    deltas.append({"type": "signature_delta", "signature": new_id("sig-")})
    out = [
        frame("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})
    ]
    for delta in deltas:
        out.append(
            frame("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        )
    out.append(frame("content_block_stop", {"type": "content_block_stop", "index": index}))
    return out


def _thinking_enabled(config: Any, max_tokens: int) -> bool:
    """`thinking: {type: enabled, budget_tokens: N}`, checked as the real API checks it."""
    if not isinstance(config, dict) or config.get("type") != "enabled":
        return False
    budget = as_int(config.get("budget_tokens"))
    if budget is None or budget < MIN_BUDGET:
        raise WireError(
            400, f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_BUDGET}"
        )
    if max_tokens <= budget:
        raise WireError(400, "`max_tokens` must be greater than `thinking.budget_tokens`")
    return True


def _check_thinking_kept(index: int, content: Any) -> None:
    """With thinking on, an assistant turn that used a tool must still open with its thinking
    block, signature intact: the mistake a client makes by dropping the blocks it cannot show."""
    if not isinstance(content, list):
        return
    blocks = [b for b in content if isinstance(b, dict)]
    if not any(b.get("type") == "tool_use" for b in blocks):
        return
    first = blocks[0].get("type") if blocks else None
    if first not in REASONING_TYPES:
        raise WireError(
            400,
            f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. "
            "When `thinking` is enabled, a final `assistant` message must start with a thinking block: "
            "thinking blocks must be preserved and passed back unchanged.",
        )
    for n, block in enumerate(blocks):
        if block.get("type") == "thinking" and not (
            isinstance(block.get("signature"), str) and block["signature"]
        ):
            raise WireError(400, f"messages.{index}.content.{n}: Invalid `signature` in `thinking` block")


def _message_head(req: SimRequest, eff: Effective, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "id": new_id("msg_sim_"),
        "type": "message",
        "role": "assistant",
        "model": eff.served_model or req.model,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def _content_chars(content: Any) -> int:
    """Text, tool inputs and tool results all count toward the input estimate."""
    if not isinstance(content, list):
        return text_len(content)
    total = 0
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            total += text_len(block.get("text"))
        elif kind == "tool_use":
            total += len(json.dumps(block.get("input"), ensure_ascii=False))
        elif kind == "tool_result":
            total += text_len(block.get("content"))
    return total


def _tool_names(tools: Any) -> tuple[str, ...]:
    if not isinstance(tools, list):
        return ()
    return tuple(t["name"] for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str))


def _has_tool_result(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )
