"""Provider-neutral records that flow from the runner to scoring and the store.

Every stage speaks these types, so the SDKs' own objects never leak past `canary.providers`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

Outcome = Literal["pass", "fail", "unavailable", "error", "harness_error"]
OUTCOMES: tuple[Outcome, ...] = ("pass", "fail", "unavailable", "error", "harness_error")


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call; `parameters` is a JSON Schema object."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """A tool call as the model made it. `arguments` is None when `raw_arguments` is not a JSON object."""

    id: str
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str


@dataclass(frozen=True)
class Message:
    """One conversation message. role `tool` carries a tool result for `tool_call_id`.

    `reasoning` holds an assistant turn's opaque vendor reasoning blocks (Anthropic `thinking` /
    `redacted_thinking` dicts, in order): the API wants them sent back unchanged, so they are
    carried verbatim and never folded into `text`."""

    role: Literal["user", "assistant", "tool"]
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tool_name: str | None = None
    reasoning: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class ChatRequest:
    system: str | None
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()


@dataclass(frozen=True)
class ChatResponse:
    """What one successful HTTP call returned, normalised across vendors.

    `reasoning` is the vendor's opaque reasoning blocks, only to be echoed back in the next
    request (see `Message.reasoning`); scorers judge `text`, which never includes them."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    input_tokens: int
    output_tokens: int
    served_model: str | None
    stop_reason: str | None
    fingerprint: str | None
    latency_s: float
    request_id: str | None = None
    reasoning: tuple[dict[str, Any], ...] = ()
    # Bounded reading (canary.providers.body): `text` keeps at most MAX_REPLY_CHARS; `text_chars`
    # is how long the server's answer really was and `cut` says something was not kept.
    text_chars: int | None = None
    cut: bool = False
    refusal: str | None = None  # the vendor's refusal text (OpenAI `message.refusal`), if any


class ProviderError(Exception):
    """One failed attempt, classified. `message` must never contain a secret.

    retryable: a service failure (408/409/429-not-quota/5xx/529/timeout/connection/mid-stream/
    bad_response): the sample is `unavailable`. Otherwise a client or config failure
    (400/401/403/404/422/quota) that retrying cannot fix: `error`. Whether canary retries is
    `retries`: a server's `x-should-retry` header overrides the class either way."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        code: str = "error",
        retry_after_s: float | None = None,
        excerpt: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s
        self.excerpt = excerpt  # capped, redacted start of a body canary could not read (bad_response)
        self.should_retry: bool | None = None  # the server's x-should-retry, which overrides `retryable`

    @property
    def retries(self) -> bool:
        """Whether canary's policy may try again: the server's say-so first, then the class."""
        return self.retryable if self.should_retry is None else self.should_retry


@dataclass(frozen=True)
class Attempt:
    """One HTTP request made for a sample (successful or not)."""

    number: int  # 1-based
    started_at: datetime
    latency_s: float
    status: int | None  # HTTP status; 200 for success and for errors that arrived mid-stream
    code: str  # "ok" or the ProviderError code
    message: str = ""
    retry_after_s: float | None = None
    turn: int = 1
    excerpt: str | None = None  # bad_response: the body's first bytes, capped and redacted


@dataclass(frozen=True)
class ScoreRecord:
    scorer: str
    passed: bool
    score: float
    reason: str


@dataclass
class TurnRecord:
    """One model reply within a sample, with what was sent before it and how it scored."""

    index: int  # 1-based
    sent: str  # the user message, or the tool result fed back
    reply: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    served_model: str | None = None
    stop_reason: str | None = None
    fingerprint: str | None = None
    scores: list[ScoreRecord] = field(default_factory=list)
    sanitized: bool = False  # some text was altered to be storable (see canary.textsafe)
    reply_chars: int | None = None  # set when the answer was cut: how long it really was
    cut: bool = False  # the server sent more than canary keeps (MAX_REPLY_CHARS); `reply` is the prefix
    refusal: str | None = None  # the refusal text when the model refused
    failure: str | None = None  # truncated / refusal / empty_output: fails the turn whatever the scorers say

    @property
    def passed(self) -> bool | None:
        if self.failure is not None:
            return False
        return all(s.passed for s in self.scores) if self.scores else None


@dataclass
class SampleResult:
    """The unit the store keeps: one canary, one model, one day, one sample index."""

    day: date
    model_id: str
    canary_id: str
    canary_hash: str
    sample_index: int
    outcome: Outcome
    started_at: datetime
    finished_at: datetime
    score: float | None = None  # mean scorer score in [0, 1]; None unless pass/fail
    reason: str = ""
    failed_turn: int | None = None
    turns: list[TurnRecord] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    latency_s: float = 0.0  # sum over successful calls
    served_model: str | None = None
    fingerprint: str | None = None
    stop_reason: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    sanitized: bool = False  # some text of the sample was altered to be storable (see canary.textsafe)

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.model_id, self.canary_id, self.canary_hash, self.sample_index)
