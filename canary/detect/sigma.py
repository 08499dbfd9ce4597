"""`rule: sigma`: the rule as first asked for, shipped exactly, and the band drawn in the report.

Alarm when today's pass rate is more than `sigma` standard deviations below the mean of the
daily pass rates of the last `window_days` days WITH DATA (trials > 0; missing days are
skipped, never counted as zeros), needing at least `min_history` such days.

- The sd is the SAMPLE sd (n - 1 denominator) of those daily rates; with a single day it is 0.
- Arithmetic is exact (fractions), so a rate equal to the mean is never "below" it by rounding.
- Zero variance: after e.g. 14 perfect days the sd is 0, so any failure at all is infinitely
  many sds below the mean: the rule fires on a single failure (score = inf). This is the
  rule's known weakness, and why it is not the default.
- A day with too few trials (see `baseline.enough_trials`) is not judged.
Measured by simulation it pages 15-30 times per series-year (benchmarks/detection.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from canary.config.models import DetectConfig
from canary.detect.baseline import enough_trials
from canary.detect.decision import Decision
from canary.detect.text import pct


@dataclass(frozen=True)
class Rolling:
    days: int
    mean: Fraction
    var: Fraction  # sample variance
    usual_trials: float

    @property
    def sd(self) -> float:
        return math.sqrt(self.var)

    def band(self, sigma: float) -> tuple[float, float]:
        """mean +- sigma*sd, clipped to [0, 1] (it is drawn as a pass-rate band)."""
        m, half = float(self.mean), sigma * self.sd
        return max(0.0, m - half), min(1.0, m + half)


def rolling(counts: Sequence[tuple[int, int]], window_days: int) -> Rolling | None:
    """Mean and sample variance of the last `window_days` daily rates with data, oldest first."""
    recent = [(x, n) for x, n in counts if n > 0][-window_days:]
    if not recent:
        return None
    rates = [Fraction(x, n) for x, n in recent]
    mean = sum(rates, Fraction(0)) / len(rates)
    var = sum(((r - mean) ** 2 for r in rates), Fraction(0)) / (len(rates) - 1) if len(rates) > 1 else Fraction(0)
    return Rolling(len(rates), mean, var, sum(n for _, n in recent) / len(recent))


def sigma_decision(counts: Sequence[tuple[int, int]], today: tuple[int, int], cfg: DetectConfig) -> Decision:
    x, n = today
    rate = x / n if n > 0 else None
    roll = rolling(counts, cfg.window_days)
    band = roll.band(cfg.sigma) if roll else None
    mean = float(roll.mean) if roll else None
    if n == 0:
        return Decision(False, 0.0, "no data today", mean, None, band)
    if roll is None or roll.days < cfg.min_history:
        have = roll.days if roll else 0
        return Decision(False, 0.0, f"not enough history: {have} days with data (needs {cfg.min_history})",
                        None, rate, band)
    if not bool(enough_trials(np.array([n]), np.array([roll.usual_trials]), cfg.min_trials)[0]):
        return Decision(False, 0.0, f"only {n} trials today (< {cfg.min_trials}): not judged", mean, rate, band)
    gap = roll.mean - Fraction(x, n)
    alarm = gap > 0 and gap * gap > Fraction(cfg.sigma) ** 2 * roll.var
    if roll.var > 0:
        score = float(gap) / roll.sd
        below = f"{score:.1f} sd below"
    else:
        score = math.inf if gap > 0 else 0.0
        below = "infinitely many sd below (sd = 0)" if gap > 0 else "not below (sd = 0)"
    sign = ">" if alarm else "<="
    reason = (f"{x}/{n} = {pct(x / n)} vs {roll.days}-day mean {pct(float(roll.mean))} (sd {pct(roll.sd)}): "
              f"{below} {sign} {cfg.sigma:g}")
    return Decision(alarm, score, reason, mean, rate, band)
