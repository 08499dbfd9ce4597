"""The vendor-neutral view of one request: just what the simulator needs to pick a reply."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SimRequest:
    model: str
    first_user_text: str | None  # the rule key
    user_turns: int  # user messages carrying text (tool results do not count)
    after_tool_result: bool  # the last message feeds back a tool result
    input_chars: int  # all request text, for the input token estimate
    stream: bool
    max_tokens: int | None
    tool_names: tuple[str, ...] = ()
    include_usage: bool = False  # OpenAI stream_options.include_usage
    thinking: bool = False  # Anthropic extended thinking is on: replies open with a thinking block


class WireError(Exception):
    """A request the real API would reject: rendered in the vendor's error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def as_int(value: object) -> int | None:
    """An integer request field, tolerating absence; bools are not integers here."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None
