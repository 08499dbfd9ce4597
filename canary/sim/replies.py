"""Choosing what the simulated model says: the scripted answer, its wrong twin, or a fault's payload."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from canary.config.models import SimCall, SimFault
from canary.sim.request import SimRequest
from canary.sim.script import SimRule
from canary.sim.state import Effective

WRONG = "I am not sure."
HUGE_PATTERN = "The quick brown fox jumps over the lazy dog — ünïcødé ✓ 日本語. "

Stop = Literal["end", "tool", "length", "refusal", "filtered"]
REFUSAL = "I can't help with that request."  # kind: refusal / content_filter
HUGE_MARK = "@@canary-huge@@"  # stands in for a huge answer, streamed lazily by the app


@dataclass(frozen=True)
class Content:
    text: str = ""
    call_name: str | None = None
    raw_arguments: str | None = (
        None  # the call's arguments as sent; invalid JSON on purpose for bad_tool_args
    )
    unlimited: bool = False  # huge answers ignore max_tokens: they exist to test size handling
    stop: Stop | None = None  # a fault's own stop reason (truncated, refusal, content_filter)


@dataclass(frozen=True)
class Reply:
    """A complete answer, ready for either wire format."""

    text: str
    call_name: str | None
    raw_arguments: str | None
    arguments: dict[str, Any] | None  # None unless raw_arguments is a JSON object
    stop: Stop
    input_tokens: int
    output_tokens: int


def generic(model: str) -> Content:
    return Content(f"Simulated reply from {model}.")


def call(spec: SimCall) -> Content:
    return Content(call_name=spec.name, raw_arguments=json.dumps(spec.arguments, ensure_ascii=False))


def scripted(
    req: SimRequest, rule: SimRule | None, correct: Callable[[], bool], forget_after_turn: int | None = None
) -> Content:
    """The rule's answer; `correct()` draws one quality trial and is only called when a choice exists.
    `forget_after_turn` makes later turns of a conversation drop the system prompt's rule."""
    if rule is None:
        return generic(req.model)
    answers = rule.answers
    if rule.kind == "multi_turn":
        if not 1 <= req.user_turns <= len(answers.turns):
            return generic(req.model)
        turn = answers.turns[req.user_turns - 1]
        if forget_after_turn is not None and req.user_turns > forget_after_turn and turn.wrong:
            return Content(turn.wrong)
        return Content(turn.answer if correct() else (turn.wrong or WRONG))
    if rule.kind == "tool_call":
        if req.after_tool_result or answers.call is None:
            return Content(answers.answer) if answers.answer is not None else generic(req.model)
        if correct():
            return call(answers.call)
        if answers.wrong_call is not None:
            return call(answers.wrong_call)
        return Content(answers.wrong or WRONG)
    if answers.answer is None:
        return generic(req.model)
    return Content(answers.answer if correct() else (answers.wrong or WRONG))


def faulty(fault: SimFault, req: SimRequest, rule: SimRule | None, answer: Content | None = None) -> Content:
    """The payload of a 200-with-bad-content fault (empty, huge, bad_tool_args, truncated,
    refusal, content_filter). `answer` is what the model would have said (for truncated)."""
    if fault.kind == "huge":
        return Content(HUGE_MARK, unlimited=True)
    if fault.kind == "bad_tool_args":
        spec = rule.answers.call if rule is not None else None
        name = spec.name if spec else (req.tool_names[0] if req.tool_names else "tool")
        return Content(call_name=name, raw_arguments=broken_json(spec.arguments if spec else {}))
    if fault.kind == "truncated":  # the whole answer, then stopped at max_tokens as if cut there
        return Content((answer.text if answer is not None else "") or WRONG, stop="length")
    if fault.kind == "refusal":
        return Content(REFUSAL, stop="refusal")
    if fault.kind == "content_filter":
        return Content(REFUSAL, stop="filtered")
    return Content("")


def broken_json(arguments: dict[str, Any]) -> str:
    """Python-literal style arguments (`{'city': 'Paris'}`): invalid JSON for every parser, including
    the partial-mode one the anthropic stream helper uses, which would silently "repair" a truncation."""
    return repr(arguments or {"input": ""})


def huge_pieces(size: int, piece: int = 16_384) -> Iterator[str]:
    """`size` characters of the huge answer, made a piece at a time: four 100 MB answers at once
    must not cost the simulator 400 MB."""
    block = HUGE_PATTERN * (piece // len(HUGE_PATTERN) + 1)
    sent = 0
    while sent < size:
        n = min(piece, size - sent)
        yield block[:n]
        sent += n


def finish(content: Content, req: SimRequest, eff: Effective) -> Reply:
    """Count tokens (chars / 4, scaled by the inflation) and cut text at max_tokens."""
    text = content.text
    stop: Stop = "end"
    out_chars = len(text)
    arguments: dict[str, Any] | None = None
    if content.call_name is not None:
        stop = "tool"
        raw = content.raw_arguments or "{}"
        out_chars += len(content.call_name) + len(raw)
        arguments = parse_object(raw)
    output_tokens = math.ceil(out_chars / 4 * eff.token_inflation)
    limit = req.max_tokens
    if limit is not None and output_tokens > limit and content.call_name is None and not content.unlimited:
        text = text[: int(limit * 4 / eff.token_inflation)]
        output_tokens, stop = limit, "length"
    if content.stop is not None:
        stop = content.stop
    return Reply(
        text=text,
        call_name=content.call_name,
        raw_arguments=(content.raw_arguments or "{}") if content.call_name is not None else None,
        arguments=arguments,
        stop=stop,
        input_tokens=max(1, math.ceil(req.input_chars / 4)),
        output_tokens=output_tokens,
    )


def parse_object(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def pieces(text: str, parts: int, minimum: int) -> list[str]:
    """Split text into at most `parts` chunks of at least `minimum` chars (one chunk if shorter)."""
    if not text:
        return []
    size = max(minimum, math.ceil(len(text) / parts))
    return [text[i : i + size] for i in range(0, len(text), size)]
