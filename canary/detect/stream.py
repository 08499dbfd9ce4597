"""Judge every day of a whole series at once, for simulations and backtests.

Day t is judged exactly as `evaluate(history=days[:t], today=days[t])` would judge it (the
calibrated rule shares its arithmetic with `evaluate`, row for row; the sigma rule simply
calls it), so what a benchmark measures is what ships. tests/test_detect.py checks this."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from canary.config.models import DetectConfig
from canary.detect.baseline import baselines
from canary.detect.calibrated import decide
from canary.detect.sigma import sigma_decision


@dataclass(frozen=True)
class StreamDecisions:
    alarm: np.ndarray  # bool per day
    score: np.ndarray  # float per day


def judge_stream(
    passes: np.ndarray, trials: np.ndarray, config: DetectConfig, rule: str | None = None, start: int = 0
) -> StreamDecisions:
    """Decisions for days start..end of the series (earlier days only serve as history)."""
    passes = np.asarray(passes, dtype=np.int64)
    trials = np.asarray(trials, dtype=np.int64)
    targets = np.arange(start, len(passes))
    name = rule or config.rule
    if len(targets) == 0:
        return StreamDecisions(np.zeros(0, dtype=bool), np.zeros(0))
    if name == "calibrated":
        s, on, _, _ = decide(passes, trials, targets, config)
        return StreamDecisions(on, s)
    if name == "sigma":
        counts = list(zip(passes.tolist(), trials.tolist(), strict=True))
        out = [sigma_decision(counts, counts[t], config, end=t) for t in targets]
        return StreamDecisions(np.array([d.alarm for d in out]), np.array([d.score for d in out]))
    raise ValueError(f"unknown detection rule {name!r}")


def baseline_progress(
    passes: np.ndarray, trials: np.ndarray, config: DetectConfig, rule: str | None = None, start: int = 0
) -> tuple[np.ndarray, int]:
    """For days start..end: how many baseline days with data each has, and how many the rule
    needs before it judges a day at all (the `warming` of `evaluate`'s Decision). calibrated:
    days with data in the lagged baseline, against `min_baseline_days`; sigma: days with data
    in the window, against `min_history`."""
    trials = np.asarray(trials, dtype=np.int64)
    targets = np.arange(start, len(trials))
    name = rule or config.rule
    if name == "calibrated":
        base = baselines(
            np.asarray(passes, dtype=np.int64),
            trials,
            targets,
            days=config.baseline_days,
            lag=config.baseline_lag_days,
            rho_floor=config.rho_floor,
        )
        return base.days.astype(np.int64), config.min_baseline_days
    if name == "sigma":
        before = np.concatenate([[0], np.cumsum(trials > 0)])[targets]  # days with data before each target
        return np.minimum(before, config.window_days), config.min_history
    raise ValueError(f"unknown detection rule {name!r}")
