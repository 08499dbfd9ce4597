"""The scorer contract shared by built-ins, a project's scorers/ folder and plugins.

A scorer is a class with a `name`, a pydantic `Args` model for its YAML options, and a
`score()` that may be sync or async (so an LLM judge can await a model call)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from canary.records import ChatResponse, Message, ToolCall

if TYPE_CHECKING:
    from canary.config.models import CanaryBase
    from canary.scoring.registry import ScorerRegistry


@dataclass(frozen=True)
class Verdict:
    passed: bool
    score: float  # in [0, 1]
    reason: str


@dataclass(frozen=True)
class ScoreInput:
    """What a scorer sees: one model reply in the context of its canary.

    For multi_turn canaries a scorer runs once per selected turn. For tool_call canaries it
    runs once: `text` is the final answer and `tool_calls` every call made in the sample."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    turn: int  # 1-based
    canary: CanaryBase
    messages: tuple[Message, ...] = ()  # the conversation up to and including this reply
    response: ChatResponse | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scorer(ABC):
    """Subclass, set `name` and `Args`, implement `score`, and register it."""

    name: ClassVar[str]
    Args: ClassVar[type[BaseModel]] = NoArgs

    def __init__(self, args: BaseModel, registry: ScorerRegistry) -> None:
        self.args = args
        self.registry = registry

    @abstractmethod
    def score(self, inp: ScoreInput) -> Verdict | Awaitable[Verdict]: ...


class ScorerSpecError(Exception):
    """A scorer entry in a canary file is wrong. `loc` is relative to the entry itself
    (e.g. `("tool_call", "args")`); `unknown` marks an unregistered scorer name (exit 78)."""

    def __init__(
        self, loc: tuple[str | int, ...], problem: str, hint: str | None = None, *, unknown: bool = False
    ):
        super().__init__(problem)
        self.loc = loc
        self.problem = problem
        self.hint = hint
        self.unknown = unknown
