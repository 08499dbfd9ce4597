"""A one-sided CUSUM on daily normal scores, replayed over a recent window.

Replaying from zero over the last W days (instead of carrying state between calls) keeps the
detector a pure function of the history, and makes evidence older than W days expire. The sum
is capped a little above the threshold and the alarm has hysteresis, so a long, deep drop does
not leave weeks of "evidence" to burn off after recovery, and a score hovering at the threshold
does not flap between firing and resolved."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

K = 0.7  # reference value: half the drop it is tuned to, ~1.4 sd of a day's count (10 points at n=30)
CAP_ABOVE = 2.0  # the sum never exceeds h + CAP_ABOVE
OFF_BELOW = 1.0  # once firing, the alarm holds until the sum falls to h - OFF_BELOW


@dataclass(frozen=True)
class Limits:
    k: float
    h: float
    off: float
    cap: float


def _arl0(h: float, k: float) -> float:
    """Siegmund's approximation of the in-control run length for N(0,1) increments."""
    b = 2.0 * k * (h + 1.166)
    return (math.exp(b) - b - 1.0) / (2.0 * k * k)


@lru_cache(maxsize=64)
def limits(false_alarms_per_year: float, k: float = K) -> Limits:
    """Threshold h whose in-control run length is a year / false_alarms_per_year days."""
    target = 365.0 / false_alarms_per_year
    lo, hi = 0.0, 50.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if _arl0(mid, k) < target:
            lo = mid
        else:
            hi = mid
    h = hi
    return Limits(k=k, h=h, off=max(h - OFF_BELOW, h / 2), cap=h + CAP_ABOVE)


def replay(increments: np.ndarray, lim: Limits) -> tuple[np.ndarray, np.ndarray]:
    """Run the capped CUSUM with hysteresis along each row (oldest first); NaN = no evidence
    that day (the state carries over). Returns the final (sum, firing) of each row."""
    rows = increments.shape[0]
    s = np.zeros(rows)
    on = np.zeros(rows, dtype=bool)
    for col in range(increments.shape[1]):
        u = increments[:, col]
        seen = ~np.isnan(u)
        s = np.where(seen, np.minimum(lim.cap, np.maximum(0.0, s + np.where(seen, u, 0.0))), s)
        on = np.where(seen, np.where(on, s > lim.off, s > lim.h), on)
    return s, on
