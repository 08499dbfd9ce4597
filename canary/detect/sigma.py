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
    """The last `days` daily rates x_i/n_i, kept as exact integers over a common denominator
    `lcm` (a_i = x_i * lcm / n_i): total = sum(a_i), squares = sum(a_i ** 2)."""

    days: int
    lcm: int
    total: int
    squares: int
    usual_trials: float

    @property
    def mean(self) -> float:
        return self.total / (self.days * self.lcm)

    @property
    def sd(self) -> float:
        """Sample sd (n - 1 denominator); 0 for a single day."""
        w = self.days
        if w < 2:
            return 0.0
        return math.sqrt((w * self.squares - self.total**2) / (w * (w - 1))) / self.lcm

    def below(self, passes: int, trials: int, sigma: float) -> tuple[bool, bool]:
        """(rate < mean, rate < mean - sigma*sd), decided exactly in integers."""
        w, big_l = self.days, self.lcm
        gap = self.total * trials - passes * w * big_l  # sign of mean - rate
        if gap <= 0:
            return False, False
        if w < 2:
            return True, True
        s2 = Fraction(sigma) ** 2
        lhs = gap * gap * (w - 1) * s2.denominator
        rhs = s2.numerator * (w * self.squares - self.total**2) * w * trials * trials
        return True, lhs > rhs

    def band(self, sigma: float) -> tuple[float, float]:
        """mean +- sigma*sd, clipped to [0, 1] (it is drawn as a pass-rate band)."""
        half = sigma * self.sd
        return max(0.0, self.mean - half), min(1.0, self.mean + half)


def rolling(counts: Sequence[tuple[int, int]], window_days: int, end: int | None = None) -> Rolling | None:
    """The last `window_days` days with data among counts[:end]."""
    recent: list[tuple[int, int]] = []
    i = len(counts) if end is None else end
    while i > 0 and len(recent) < window_days:  # newest first: stop once the window is full
        i -= 1
        x, n = counts[i]
        if n > 0:
            recent.append((x, n))
    if not recent:
        return None
    big_l = math.lcm(*(n for _, n in recent))
    scaled = [x * (big_l // n) for x, n in recent]
    return Rolling(
        len(recent), big_l, sum(scaled), sum(a * a for a in scaled), sum(n for _, n in recent) / len(recent)
    )


def sigma_decision(
    counts: Sequence[tuple[int, int]], today: tuple[int, int], cfg: DetectConfig, end: int | None = None
) -> Decision:
    """Today's Decision; the history is counts[:end] (all of it by default), oldest first."""
    x, n = today
    rate = x / n if n > 0 else None
    roll = rolling(counts, cfg.window_days, end)
    band = roll.band(cfg.sigma) if roll else None
    mean = roll.mean if roll else None
    if n == 0:
        return Decision(False, 0.0, "no data today", mean, None, band)
    if roll is None or roll.days < cfg.min_history:
        have = roll.days if roll else 0
        return Decision(
            False,
            0.0,
            f"not enough history: {have} days with data (needs {cfg.min_history})",
            None,
            rate,
            band,
            (have, cfg.min_history),
        )
    if not bool(enough_trials(np.array([n]), np.array([roll.usual_trials]), cfg.min_trials)[0]):
        return Decision(
            False, 0.0, f"only {n} trials today (< {cfg.min_trials}): not judged", mean, rate, band
        )
    lower, alarm = roll.below(x, n, cfg.sigma)
    sd = roll.sd
    if sd > 0:
        score = (roll.mean - x / n) / sd
        below = f"{score:.1f} sd below"
    else:
        score = math.inf if lower else 0.0
        below = "infinitely many sd below (sd = 0)" if lower else "not below (sd = 0)"
    sign = ">" if alarm else "<="
    reason = (
        f"{x}/{n} = {pct(x / n)} vs {roll.days}-day mean {pct(roll.mean)} (sd {pct(sd)}): "
        f"{below} {sign} {cfg.sigma:g}"
    )
    return Decision(alarm, score, reason, mean, rate, band)
