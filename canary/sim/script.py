"""What the simulator should do, built from a project's models and canaries.

Kept free of aiohttp and the SDKs so the CLI and tests can build scripts cheaply."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from canary.config.models import (
    CanaryBase,
    ModelConfig,
    MultiTurnCanary,
    SimAnswers,
    SimBehaviour,
    SingleCanary,
    ToolCallCanary,
)
from canary.errors import SetupError

RuleKind = Literal["single", "multi_turn", "tool_call"]


@dataclass(frozen=True)
class SimRule:
    """Scripted answers for requests whose first user message is exactly `key`."""

    key: str
    kind: RuleKind
    answers: SimAnswers
    canary_id: str = ""


@dataclass
class SimScript:
    behaviours: dict[str, SimBehaviour]  # keyed by the request's `model` name
    rules: list[SimRule] = field(default_factory=list)
    default_behaviour: SimBehaviour | None = None  # for unknown model names; None -> 404


def rule_for(canary: CanaryBase) -> SimRule | None:
    """The rule a canary's `sim:` block describes, keyed by the first user message it sends."""
    if canary.sim is None:
        return None
    if isinstance(canary, MultiTurnCanary):
        return SimRule(canary.turns[0].user, "multi_turn", canary.sim, canary.id)
    if isinstance(canary, ToolCallCanary):
        return SimRule(canary.prompt, "tool_call", canary.sim, canary.id)
    if isinstance(canary, SingleCanary):
        return SimRule(canary.prompt, "single", canary.sim, canary.id)
    return None


def script_from_project(models: Iterable[ModelConfig], canaries: Iterable[CanaryBase]) -> SimScript:
    """Behaviours of the `provider: sim` models (by wire name) and one rule per canary with `sim:`.

    Two sim models may share a wire name only if they also share the behaviour: the simulator
    can only tell requests apart by the `model` field."""
    behaviours: dict[str, SimBehaviour] = {}
    owners: dict[str, str] = {}
    for model in models:
        if model.provider != "sim":
            continue
        behaviour = model.sim or SimBehaviour()
        known = behaviours.get(model.model)
        if known is not None and known != behaviour:
            raise SetupError(
                f"models {owners[model.model]!r} and {model.id!r} are both simulated as {model.model!r} "
                "with different `sim` settings (give them different `model` names)"
            )
        behaviours[model.model] = behaviour
        owners.setdefault(model.model, model.id)
    rules = [rule for rule in (rule_for(c) for c in canaries) if rule is not None]
    return SimScript(behaviours=behaviours, rules=rules)
