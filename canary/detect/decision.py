"""The detector's input and output types, shared by every rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

HistoryDay = tuple[date, int, int]  # (date, passes, trials); trials == 0: no data that day


@dataclass(frozen=True)
class Decision:
    """Today's verdict for one series. The caller fires an alert while `alarm` is True and
    resolves it when it turns False, so `alarm` means "still degraded", not "newly degraded"."""

    alarm: bool
    score: float  # higher = more evidence of a drop (comparable within a rule)
    reason: str  # one line for humans
    baseline: float | None  # the baseline pass rate used, if any
    rate: float | None  # today's pass rate, if trials > 0
    band: tuple[float, float] | None = None  # rolling mean +- sigma*sd (the sigma rule's band)
    # Not judged yet: (days with data in the baseline, days needed). A new or edited series is
    # held until it has a baseline; it is neither "ok" nor an alarm.
    warming: tuple[int, int] | None = None
