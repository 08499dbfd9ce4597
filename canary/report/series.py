"""Daily views of one series (a model x canary, or a model overall) with what detection saw.

Editing a canary starts a new series (its content hash changes), so each day is read from the
hash *active* that day (the newest one with data), and the band, rolling mean and paging alarms
of that day come from that hash's own history, exactly as `canary check` judged it then. The
band is the sigma rule's (rolling mean +- sigma x sd of the last `window_days` days with data);
the alarm is the paging rule's (`detect.rule`, calibrated by default), from
canary.detect.stream.judge_stream, which judges every day as `evaluate` would."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from canary.config.models import DetectConfig
from canary.detect.stream import baseline_progress, judge_stream
from canary.report.data import DayAgg, Quantiles, ServedDay


def day_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


@dataclass(frozen=True)
class DayView:
    day: date
    counts: DayAgg | None  # the active hash's counts; None: nothing stored that day
    hash: str | None
    mean: float | None = None  # rolling mean of the sigma window, before this day
    band: tuple[float, float] | None = None
    alarm: bool = False  # the paging rule fired on this day
    state: str = "no_data"  # ok | outage | no_data
    latency: Quantiles | None = None
    warming: tuple[int, int] | None = None  # not judged yet: (baseline days with data, days needed)

    @property
    def warming_text(self) -> str:
        """ "3 of 14 baseline days", shown beside the "not judged yet" badge."""
        return f"{self.warming[0]} of {self.warming[1]} baseline days" if self.warming else ""

    @property
    def rate(self) -> float | None:
        c = self.counts
        return c.passes / c.scored if c and c.scored else None

    @property
    def tokens(self) -> float | None:
        c = self.counts
        return c.output_tokens / c.scored if c and c.scored else None

    @property
    def cost_per_correct(self) -> float | None:
        c = self.counts
        return c.cost_usd / c.passes if c and c.priced and c.passes else None

    @property
    def availability(self) -> float | None:
        c = self.counts
        return 1 - c.unavailable / c.total if c and c.total else None

    @property
    def below_band(self) -> bool:
        return self.rate is not None and self.band is not None and self.rate < self.band[0]


def active_counts(per_hash: Mapping[str, Mapping[date, DayAgg]]) -> dict[date, tuple[str, DayAgg]]:
    """Each day's (hash, counts) from the newest content that has data that day: on the day a
    canary was edited, the new content wins."""
    order = sorted(
        (h for h in per_hash if per_hash[h]), key=lambda h: (min(per_hash[h]), max(per_hash[h]), h)
    )
    out: dict[date, tuple[str, DayAgg]] = {}
    for chash in order:  # later hashes overwrite earlier ones
        for day, counts in per_hash[chash].items():
            out[day] = (chash, counts)
    return out


def day_state(counts: DayAgg | None, max_unavailable: float) -> str:
    if counts is None or counts.total == 0:
        return "no_data"
    return "outage" if counts.unavailable / counts.total > max_unavailable else "ok"


def build_days(
    per_hash: Mapping[str, Mapping[date, DayAgg]],
    window: Sequence[date],
    lookback_start: date,
    detect: DetectConfig,
    max_unavailable: float,
    latency: Mapping[date, Quantiles] | None = None,
) -> list[DayView]:
    """One DayView per day of `window`; days from `lookback_start` on feed the detectors."""
    if not window:
        return []
    all_days = day_range(min(lookback_start, window[0]), window[-1])
    index = {d: i for i, d in enumerate(all_days)}
    active = active_counts(per_hash)
    first = index[window[0]]
    targets = np.arange(first, len(all_days))
    judged: dict[str, tuple[np.ndarray, Bands, tuple[np.ndarray, int]]] = {}
    for chash in {active[d][0] for d in window if d in active}:
        series = per_hash[chash]
        passes = np.array([series[d].passes if d in series else 0 for d in all_days], dtype=np.int64)
        trials = np.array([series[d].scored if d in series else 0 for d in all_days], dtype=np.int64)
        judged[chash] = (
            judge_stream(passes, trials, detect, start=first).alarm,
            sigma_bands(passes, trials, targets, detect),
            baseline_progress(passes, trials, detect, start=first),
        )
    out: list[DayView] = []
    for i, day in enumerate(window):
        lat = latency.get(day) if latency else None
        if day not in active:
            out.append(DayView(day, None, None, latency=lat))
            continue
        chash, counts = active[day]
        alarms, bands, (have, need) = judged[chash]
        mean = band = None
        if bands.enough[i]:
            mean, band = float(bands.mean[i]), (float(bands.low[i]), float(bands.high[i]))
        state = day_state(counts, max_unavailable)
        # An outage is not a regression: canary check holds quality on such days.
        alarm = bool(alarms[i]) and state == "ok" and counts.scored > 0
        warming = (int(have[i]), need) if have[i] < need and not alarm else None
        out.append(DayView(day, counts, chash, mean, band, alarm, state, lat, warming))
    return out


@dataclass(frozen=True)
class Bands:
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    enough: np.ndarray  # at least min_history days with data: the rule is in force


def sigma_bands(passes: np.ndarray, trials: np.ndarray, targets: np.ndarray, detect: DetectConfig) -> Bands:
    """The sigma rule's band for many days at once: the mean and sample sd of the daily pass
    rates of the last `window_days` days with data before each target day (missing days are
    skipped, never zeros), mean +- sigma x sd clipped to [0, 1].

    The same numbers as canary.detect.sigma.rolling(...).band() (which does exact integer
    arithmetic, one day per call) up to float rounding; vectorised because a report draws
    tens of thousands of days. tests/test_report.py compares the two day by day."""
    width = detect.window_days
    with_data = np.flatnonzero(trials > 0)
    rates = passes[with_data] / trials[with_data]
    before = np.searchsorted(with_data, targets)  # days with data strictly before each target
    cols = before[:, None] - width + np.arange(width)[None, :]
    valid = cols >= 0
    values = rates[np.clip(cols, 0, None)] if len(rates) else np.zeros(cols.shape)
    values = np.where(valid, values, 0.0)
    n = valid.sum(axis=1)
    mean = values.sum(axis=1) / np.maximum(n, 1)
    spread = np.where(valid, values - mean[:, None], 0.0)
    sd = np.where(n >= 2, np.sqrt((spread * spread).sum(axis=1) / np.maximum(n - 1, 1)), 0.0)
    low = np.clip(mean - detect.sigma * sd, 0.0, 1.0)
    high = np.clip(mean + detect.sigma * sd, 0.0, 1.0)
    return Bands(mean, low, high, n >= detect.min_history)


def content_changes(
    per_hash: Mapping[str, Mapping[date, DayAgg]], window: Sequence[date]
) -> list[tuple[date, str, str]]:
    """(day, old hash, new hash) for each day in `window` whose active content differs from the
    previous day with data."""
    active = active_counts(per_hash)
    out = []
    previous: str | None = None
    start = window[0] if window else None
    for day in sorted(active):
        chash = active[day][0]
        if previous is not None and chash != previous and start is not None and start <= day <= window[-1]:
            out.append((day, previous, chash))
        previous = chash
    return out


def served_changes(by_day: Mapping[date, ServedDay], window: Sequence[date]) -> list[tuple[date, str, str]]:
    """(day, kind, text) where the served model (kind `served`) or only the system fingerprint
    (kind `fingerprint`) differs from the previous day with data, as the served_model signal sees it."""
    out = []
    previous: set[tuple[str | None, str | None]] | None = None
    start = window[0] if window else None
    for day in sorted(by_day):
        today = set(by_day[day])
        if previous is not None and start is not None and start <= day <= window[-1]:
            new = today - previous
            if new:
                names_before = {s for s, _ in previous}
                kind = "served" if any(s not in names_before for s, _ in new) else "fingerprint"
                out.append((day, kind, f"{describe(previous)} -> {describe(today)}"))
        previous = today
    return out


def describe(pairs: set[tuple[str | None, str | None]] | Mapping[tuple[str | None, str | None], int]) -> str:
    return ", ".join(sorted(f"{s or '?'}" + (f" [{f}]" if f else "") for s, f in pairs))


def combine(parts: Sequence[Mapping[date, tuple[str, DayAgg]]]) -> dict[date, DayAgg]:
    """A model's overall day: its canaries' active counts summed."""
    out: dict[date, DayAgg] = {}
    for part in parts:
        for day, (_, counts) in part.items():
            out[day] = out[day] + counts if day in out else counts
    return out
