"""The OpenAI Chat Completions dialect (`POST /v1/chat/completions`), as the official SDK parses it.

A mid-stream failure is a `data: {"error": ...}` line: the SDK's stream parser raises it as a
plain `openai.APIError` (not a status error)."""

from __future__ import annotations

import time
from typing import Any

from canary.sim.replies import Reply, pieces
from canary.sim.request import SimRequest, WireError, as_int
from canary.sim.state import Effective
from canary.sim.wire import block_text, dumps, new_id, text_len

FINISH_REASONS = {
    "end": "stop",
    "tool": "tool_calls",
    "length": "length",
    "refusal": "stop",
    "filtered": "content_filter",
}
DEFAULT_FINGERPRINT = "fp_sim"
SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
ERRORS: dict[int, tuple[str, str | None]] = {  # status -> (type, code)
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def frame(data: dict[str, Any]) -> bytes:
    return b"data: " + dumps(data) + b"\n\n"


class OpenAIWire:
    request_id_header = "x-request-id"

    def parse(self, body: dict[str, Any]) -> SimRequest:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise WireError(400, "you must provide a model parameter")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise WireError(400, "'messages' must be a non-empty array")
        max_tokens = as_int(body.get("max_completion_tokens"))
        if max_tokens is None:
            max_tokens = as_int(body.get("max_tokens"))
        if max_tokens is not None and max_tokens < 1:
            raise WireError(400, "max_tokens must be at least 1")
        chars = 0
        first: str | None = None
        turns = 0
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                raise WireError(400, f"messages[{index}] must be an object")
            content = message.get("content")
            chars += text_len(content)
            for tool_call in message.get("tool_calls") or ():
                if isinstance(tool_call, dict) and isinstance(tool_call.get("function"), dict):
                    chars += text_len(tool_call["function"].get("arguments"))
            if message.get("role") == "user":
                turns += 1
                if first is None:
                    first = block_text(content) or ""
        stream = body.get("stream") is True
        options = body.get("stream_options")
        return SimRequest(
            model=model,
            first_user_text=first,
            user_turns=turns,
            after_tool_result=messages[-1].get("role") == "tool",
            input_chars=chars,
            stream=stream,
            max_tokens=max_tokens,
            tool_names=_tool_names(body.get("tools")),
            include_usage=stream and isinstance(options, dict) and options.get("include_usage") is True,
        )

    def error(self, status: int, message: str, code: str | None = None) -> dict[str, Any]:
        etype, default_code = ERRORS.get(status, ("server_error", None))
        return {"error": {"message": message, "type": etype, "param": None, "code": code or default_code}}

    def quota(self) -> dict[str, Any]:
        message = "You exceeded your current quota, please check your plan and billing details."
        return {
            "error": {
                "message": message,
                "type": "insufficient_quota",
                "param": None,
                "code": "insufficient_quota",
            }
        }

    def not_found(self, model: str) -> dict[str, Any]:
        message = f"The model `{model}` does not exist or you do not have access to it."
        return self.error(404, message, code="model_not_found")

    def response(self, reply: Reply, req: SimRequest, eff: Effective) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
        if reply.stop == "refusal":  # the API's refusal shape: no content, the text in `refusal`
            message["content"], message["refusal"] = None, reply.text
        if reply.call_name is not None:
            message["content"] = reply.text or None
            message["tool_calls"] = [_tool_call(reply)]
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": FINISH_REASONS[reply.stop],
        }
        return {**_head(req, eff, "chat.completion"), "choices": [choice], "usage": _usage(reply)}

    def frames(self, reply: Reply, req: SimRequest, eff: Effective, *, broken: bool = False) -> list[bytes]:
        head = _head(req, eff, "chat.completion.chunk")
        if req.include_usage:
            head["usage"] = None

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return frame({**head, "choices": [choice]})

        if reply.call_name is not None:
            call = _tool_call(reply)
            call["function"]["arguments"] = ""
            out = [chunk({"role": "assistant", "content": None, "tool_calls": [{"index": 0, **call}]})]
            deltas = [
                {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}
                for p in pieces(reply.raw_arguments or "", 4, 8)
            ]
        else:
            out = [chunk({"role": "assistant", "content": "", "refusal": None})]
            field = "refusal" if reply.stop == "refusal" else "content"
            deltas = [{field: p} for p in pieces(reply.text, 8, 24)]
        for delta in deltas:
            out.append(chunk(delta))
            if broken:
                break
        if broken:
            out.append(
                frame(
                    {"error": {"message": SERVER_ERROR, "type": "server_error", "param": None, "code": None}}
                )
            )
            return out
        out.append(chunk({}, FINISH_REASONS[reply.stop]))
        if req.include_usage:
            out.append(frame({**head, "choices": [], "usage": _usage(reply)}))
        out.append(b"data: [DONE]\n\n")
        return out


def _head(req: SimRequest, eff: Effective, obj: str) -> dict[str, Any]:
    return {
        "id": new_id("chatcmpl-sim"),
        "object": obj,
        "created": int(time.time()),
        "model": eff.served_model or req.model,
        "system_fingerprint": eff.fingerprint or DEFAULT_FINGERPRINT,
        "service_tier": "default",
    }


def _tool_call(reply: Reply) -> dict[str, Any]:
    function = {"name": reply.call_name, "arguments": reply.raw_arguments or "{}"}
    return {"id": new_id("call_sim_"), "type": "function", "function": function}


def _usage(reply: Reply) -> dict[str, int]:
    total = reply.input_tokens + reply.output_tokens
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": total,
    }


def _tool_names(tools: Any) -> tuple[str, ...]:
    if not isinstance(tools, list):
        return ()
    names = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.append(function["name"])
    return tuple(names)
