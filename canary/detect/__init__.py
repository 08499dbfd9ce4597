"""Regression detectors: pure functions from a series' daily (passes, trials) to a Decision.

Two rules: `sigma` (rolling mean - sigma x sd, exactly as first asked for; also the band in
the report) and `calibrated` (the default: a beta-binomial CUSUM against a lagged baseline,
calibrated to about `false_alarms_per_year`). See canary.detect.sigma and .calibrated;
benchmarks/detection.py measures both."""

from __future__ import annotations

from collections.abc import Sequence

from canary.config.models import DetectConfig
from canary.detect.calibrated import calibrated_decision
from canary.detect.decision import Decision, HistoryDay
from canary.detect.sigma import sigma_decision

__all__ = ["Decision", "HistoryDay", "evaluate", "rules"]

_RULES = {"sigma": sigma_decision, "calibrated": calibrated_decision}


def rules() -> list[str]:
    return list(_RULES)


def evaluate(
    history: Sequence[HistoryDay], today: tuple[int, int], config: DetectConfig, rule: str | None = None
) -> Decision:
    """Judge today against `history` (one entry per calendar day before today, oldest first;
    trials == 0 for a day without data). Pure and deterministic. rule None: config.rule."""
    name = rule or config.rule
    if name not in _RULES:
        raise ValueError(f"unknown detection rule {name!r} (known: {', '.join(_RULES)})")
    _check(today)
    counts = [(int(p), int(n)) for _, p, n in history]
    for c in counts:
        _check(c)
    return _RULES[name](counts, (int(today[0]), int(today[1])), config)


def _check(day: tuple[int, int]) -> None:
    passes, trials = day
    if not 0 <= passes <= trials:
        raise ValueError(f"a day needs 0 <= passes <= trials, got {passes}/{trials}")
