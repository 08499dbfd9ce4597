"""The default paging rule: a count-based CUSUM calibrated to the series' own noise.

1. Each day's passes are scored against the beta-binomial predictive of its lagged, pooled
   baseline (rho estimated from the series, floored), as a mid-p normal score z.
2. A one-sided CUSUM of (-z - k) is replayed over the last `cusum_window_days`, capped, with
   hysteresis and a recovery test; h is set from `false_alarms_per_year` (Siegmund).
3. Days with too few trials (fewer than `min_trials` and fewer than half the series' usual
   count) and days without a baseline add no evidence: the state carries over them, so an
   outage neither raises nor resolves an alarm.

Why a normal score rather than a likelihood ratio: the mid-p z is the exact normalising
transform of the predictive, so one threshold formula holds from 10 to 100 trials a day and
from 70 % to 99 % pass rates (measured false alarms stay at or below the design rate), and on
the target series it detects as fast as a beta-binomial likelihood-ratio CUSUM did.

Needs `cusum_window_days + baseline_lag_days + baseline_days` days of history (98 by default)
to judge every day of the window against a full baseline; shorter histories just mean smaller
baselines (never an alarm with fewer than `min_baseline_days` days of data in one).
Everything is vectorised over days so that `canary.detect.stream` judges a whole simulated
stream with the very same arithmetic as `evaluate` (tests prove they agree bit for bit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from canary.config.models import DetectConfig
from canary.detect.baseline import Baselines, baselines, enough_trials
from canary.detect.betabinom import mid_p, normal_scores
from canary.detect.cusum import RECOVER_H, Limits, limits, replay
from canary.detect.decision import Decision
from canary.detect.sigma import rolling
from canary.detect.text import pct


@dataclass(frozen=True)
class DayScores:
    """Evidence for the days `at`: NaN increment where the day is not judged."""

    at: np.ndarray
    base: Baselines
    judged: np.ndarray
    z: np.ndarray
    increments: np.ndarray


def day_scores(
    passes: np.ndarray, trials: np.ndarray, at: np.ndarray, cfg: DetectConfig, lim: Limits
) -> DayScores:
    """Each day's score depends only on its own baseline, never on which day is being judged:
    that is what lets a whole stream be scored once and replayed per day."""
    base = baselines(
        passes, trials, at, days=cfg.baseline_days, lag=cfg.baseline_lag_days, rho_floor=cfg.rho_floor
    )
    n = trials[at]
    usual = base.trials / np.maximum(base.days, 1)
    judged = (base.days >= cfg.min_baseline_days) & enough_trials(n, usual, cfg.min_trials)
    z = np.full(len(at), np.nan)
    sel = np.flatnonzero(judged)
    if len(sel):
        p = mid_p(passes[at][sel], n[sel], base.a[sel], base.b[sel])
        z[sel] = normal_scores(p)
    return DayScores(at, base, judged, z, -z - lim.k)


def windows(increments: np.ndarray, first: int, targets: np.ndarray, width: int) -> np.ndarray:
    """Rows of the last `width` increments up to each target day (NaN before day `first`)."""
    cols = targets[:, None] - np.arange(width - 1, -1, -1)[None, :] - first
    padded = np.concatenate([np.full(width, np.nan), increments])
    return padded[np.clip(cols + width, 0, None)]


def decide(
    passes: np.ndarray, trials: np.ndarray, targets: np.ndarray, cfg: DetectConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, DayScores]:
    """(CUSUM sum, firing, recovery evidence) on each target day; also the scored days (from
    the earliest window start)."""
    lim = limits(cfg.false_alarms_per_year)
    width = cfg.cusum_window_days
    first = max(int(targets.min()) - width + 1, 0)
    scores = day_scores(passes, trials, np.arange(first, int(targets.max()) + 1), cfg, lim)
    s, on, rec = replay(windows(scores.increments, first, targets, width), lim)
    return s, on, rec, scores


def calibrated_decision(
    counts: Sequence[tuple[int, int]], today: tuple[int, int], cfg: DetectConfig
) -> Decision:
    """Today's Decision under the calibrated rule; `counts` is the history, oldest first."""
    x, n = today
    passes = np.array([c[0] for c in counts] + [x], dtype=np.int64)
    trials = np.array([c[1] for c in counts] + [n], dtype=np.int64)
    t = len(counts)
    s_all, on_all, rec_all, scores = decide(passes, trials, np.array([t]), cfg)
    s, on, rec = float(s_all[0]), bool(on_all[0]), float(rec_all[0])
    lim = limits(cfg.false_alarms_per_year)
    base, i = scores.base, len(scores.at) - 1
    days, pooled = int(base.days[i]), int(base.trials[i])
    enough = days >= cfg.min_baseline_days
    roll = rolling(counts, cfg.window_days)
    band = roll.band(cfg.sigma) if roll and roll.days >= cfg.min_history else None
    baseline = float(base.mean[i]) if enough else None
    rate = x / n if n > 0 else None
    state = _state(s, on, rec, lim)
    if n == 0:
        why = "no data today"
    elif not enough:
        why = (
            f"{x}/{n} = {pct(x / n)}: not judged, {days} days with data in the baseline "
            f"({cfg.baseline_lag_days + 1}-{cfg.baseline_lag_days + cfg.baseline_days} days ago; needs "
            f"{cfg.min_baseline_days})"
        )
    elif not scores.judged[i]:
        why = f"{x}/{n} = {pct(x / n)}: only {n} trials today (< {cfg.min_trials}), not judged"
    else:
        why = (
            f"{x}/{n} = {pct(x / n)} vs baseline {pct(float(base.mean[i]))} (n={pooled}, "
            f"rho={float(base.rho[i]):.3f}): z={float(scores.z[i]):+.1f}"
        )
        return Decision(on, s, f"{why}, {state}", baseline, rate, band)
    carried = f"; {state} (from earlier days)" if s > 0 or on else ""
    warming = (days, cfg.min_baseline_days) if not enough else None
    return Decision(on, s, why + carried, baseline, rate, band, warming)


def _state(s: float, on: bool, rec: float, lim: Limits) -> str:
    if not on:
        return f"CUSUM {s:.1f} <= h={lim.h:.1f}"
    text = (
        f"CUSUM {s:.1f} > h={lim.h:.1f}"
        if s > lim.h
        else (f"CUSUM {s:.1f} <= h={lim.h:.1f} but > {lim.off:.1f}: still degraded")
    )
    return text + (f" (recovery evidence {rec:.1f} of {RECOVER_H:g})" if rec > 0 else "")
