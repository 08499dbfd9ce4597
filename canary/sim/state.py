"""The simulator's mutable state: the script, request counters, fault counters and quality rolls.

Only ever touched from the server's event loop, so it needs no locks. Rolls are seeded from
stable strings (not `hash()`), so a fresh process replays the same sequence."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import date

from canary.config.models import SimBehaviour, SimFault
from canary.sim.script import SimRule, SimScript


@dataclass(frozen=True)
class Effective:
    """A behaviour with the periods for one simulated day applied."""

    quality: float
    latency_s: float
    token_inflation: float
    served_model: str | None
    fingerprint: str | None
    forget_after_turn: int | None = None


def in_span(day: date, start: date | None, end: date | None) -> bool:
    return (start is None or start <= day) and (end is None or day <= end)


def effective(behaviour: SimBehaviour, day: date) -> Effective:
    """Later periods override earlier ones; unset period fields keep the base value."""
    quality, latency_ms, inflation = behaviour.quality, behaviour.latency_ms, behaviour.token_inflation
    served_model, fingerprint = behaviour.served_model, behaviour.fingerprint
    forget = behaviour.forget_after_turn
    for p in behaviour.periods:
        if not in_span(day, p.from_day, p.to_day):
            continue
        quality = quality if p.quality is None else p.quality
        latency_ms = latency_ms if p.latency_ms is None else p.latency_ms
        inflation = inflation if p.token_inflation is None else p.token_inflation
        served_model = served_model if p.served_model is None else p.served_model
        fingerprint = fingerprint if p.fingerprint is None else p.fingerprint
        forget = forget if p.forget_after_turn is None else p.forget_after_turn
    return Effective(quality, latency_ms / 1000.0, inflation, served_model, fingerprint, forget)


class SimState:
    def __init__(self, script: SimScript) -> None:
        self.requests: Counter[str] = Counter()
        self.set_script(script)

    def set_script(self, script: SimScript) -> None:
        """Swap behaviours and rules; fault and roll counters restart since they belong to the script."""
        self.script = script
        self._rules: dict[str, SimRule] = {}
        self._stripped: dict[str, SimRule] = {}
        for rule in script.rules:  # the first canary with a given prompt wins
            self._rules.setdefault(rule.key, rule)
            self._stripped.setdefault(rule.key.strip(), rule)
        self._effective: dict[tuple[str, date], Effective] = {}
        self._fault_counts: dict[tuple[str, int], int] = {}
        self._rolls: dict[tuple[str, date, str], int] = {}

    def reset(self) -> None:
        self.requests.clear()
        self._fault_counts.clear()
        self._rolls.clear()

    def stats(self) -> dict[str, int]:
        return dict(self.requests)

    def count(self, model: str) -> None:
        self.requests[model] += 1

    def behaviour(self, model: str) -> SimBehaviour | None:
        return self.script.behaviours.get(model, self.script.default_behaviour)

    def rule(self, first_user_text: str | None) -> SimRule | None:
        if first_user_text is None:
            return None
        return self._rules.get(first_user_text) or self._stripped.get(first_user_text.strip())

    def effective(self, model: str, behaviour: SimBehaviour, day: date) -> Effective:
        key = (model, day)
        found = self._effective.get(key)
        if found is None:
            found = self._effective[key] = effective(behaviour, day)
        return found

    def pick_fault(self, model: str, behaviour: SimBehaviour, day: date) -> SimFault | None:
        """The first applicable fault that fires: `times` counts per model and fault index,
        `every: N` fires on each Nth request, otherwise a seeded roll against `rate`."""
        for index, fault in enumerate(behaviour.faults):
            if not in_span(day, fault.from_day, fault.to_day):
                continue
            key = (model, index)
            seen = self._fault_counts.get(key, 0)
            self._fault_counts[key] = seen + 1
            if fault.times is not None:
                if seen < fault.times:
                    return fault
                continue
            if fault.every is not None:
                if (seen + 1) % fault.every == 0:
                    return fault
                continue
            if _chance(fault.rate, f"{behaviour.seed}|{model}|{day}|fault{index}|{seen}"):
                return fault
        return None

    def roll(self, model: str, behaviour: SimBehaviour, day: date, key: str, quality: float) -> bool:
        """One quality trial for (model, day, rule): True means the correct answer."""
        counter = (model, day, key)
        n = self._rolls.get(counter, 0)
        self._rolls[counter] = n + 1
        return _chance(quality, f"{behaviour.seed}|{model}|{day}|{key}|{n}")


def _chance(probability: float, seed: str) -> bool:
    """Exactly always at 1.0 and never at 0.0; a reproducible draw in between."""
    if probability >= 1.0:
        return True
    if probability <= 0.0:
        return False
    return random.Random(seed).random() < probability
