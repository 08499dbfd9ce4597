"""Detectors: hand-built histories with known answers, plus one small seeded simulation."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pytest

from canary.config.models import DetectConfig
from canary.detect import Decision, evaluate, rules
from canary.detect.betabinom import mid_p
from canary.detect.cusum import _arl0, limits
from canary.detect.stream import judge_stream

CFG = DetectConfig()
DAY0 = date(2025, 1, 1)


def hist(counts: list[tuple[int, int]]) -> list[tuple[date, int, int]]:
    return [(DAY0 + timedelta(days=i), x, n) for i, (x, n) in enumerate(counts)]


def judge(
    counts: list[tuple[int, int]], today: tuple[int, int], rule: str | None = None, cfg: DetectConfig = CFG
) -> Decision:
    return evaluate(hist(counts), today, cfg, rule)


def run(counts: list[tuple[int, int]], start: int, rule: str | None = None) -> list[Decision]:
    """Decisions for days start.. of a series, each judged on the days before it."""
    return [judge(counts[:t], counts[t], rule) for t in range(start, len(counts))]


def simulate(rng: np.random.Generator, days: int, rate: float, trials: int) -> tuple[np.ndarray, np.ndarray]:
    """ICC 0.01 day effects, 5 % missing days, 10 % partial days."""
    p = rng.beta(rate * 99, (1 - rate) * 99, days)
    n = np.full(days, trials)
    partial = rng.random(days) < 0.10
    n[partial] = rng.integers(max(1, trials // 6), max(2, trials // 2) + 1, int(partial.sum()))
    n[rng.random(days) < 0.05] = 0
    return rng.binomial(n, p), n


def test_rules_and_bad_input() -> None:
    assert rules() == ["sigma", "calibrated"]
    assert CFG.rule == "calibrated"
    with pytest.raises(ValueError, match="unknown detection rule"):
        judge([(9, 10)] * 20, (9, 10), "nope")
    with pytest.raises(ValueError, match="passes <= trials"):
        judge([(9, 10)] * 20, (11, 10))


# --------------------------------------------------------------------------- rule: sigma


def alternating(k: int = 14) -> list[tuple[int, int]]:
    """Daily rates 0.90, 0.96, 0.90, ... : mean 0.93, population sd 0.03, sample sd 0.03*sqrt(14/13)."""
    return [(900, 1000) if i % 2 == 0 else (960, 1000) for i in range(k)]


def test_sigma_fires_exactly_below_mean_minus_two_sample_sd() -> None:
    sample_sd = 0.03 * math.sqrt(14 / 13)  # 0.031132...
    limit = 0.93 - 2 * sample_sd  # 0.867735...
    # 0.868 is below the population-sd limit (0.87) but above the sample-sd one: the sample sd is used
    d = judge(alternating(), (868, 1000), "sigma")
    assert not d.alarm
    assert d.score == pytest.approx((0.93 - 0.868) / sample_sd)
    assert d.band == pytest.approx((limit, 0.93 + 2 * sample_sd))
    assert d.baseline == pytest.approx(0.93)
    assert judge(alternating(), (867, 1000), "sigma").alarm  # 0.867 < 0.867735
    assert not judge(alternating(), (870, 1000), "sigma").alarm


def test_sigma_zero_variance_fires_on_a_single_failure() -> None:
    perfect = [(30, 30)] * 14
    d = judge(perfect, (29, 30), "sigma")
    assert d.alarm and d.score == math.inf
    assert "sd = 0" in d.reason and "29/30" in d.reason
    assert d.band == (1.0, 1.0)
    same = judge(perfect, (30, 30), "sigma")
    assert not same.alarm and same.score == 0.0
    # equal to a non-round mean is not "below" it: exact arithmetic, no rounding noise
    assert not judge([(27, 30)] * 14, (9, 10), "sigma").alarm


def test_sigma_needs_min_history_days_with_data() -> None:
    four = [(27, 30), (0, 0), (28, 30), (0, 0), (0, 0), (27, 30), (29, 30)]
    d = judge(four, (10, 30), "sigma")
    assert not d.alarm and "not enough history: 4 days" in d.reason
    assert judge(four + [(28, 30)], (10, 30), "sigma").alarm


def test_sigma_skips_missing_days_and_counts_only_days_with_data() -> None:
    data = alternating()
    gappy: list[tuple[int, int]] = []
    for c in data:
        gappy += [c, (0, 0)]
    # the 15th-newest day with data (a 0% day) lies outside the 14-day window
    old = [(0, 1000)]
    for today in ((868, 1000), (867, 1000)):
        plain = judge(data, today, "sigma")
        spread = judge(old + gappy, today, "sigma")
        assert (spread.alarm, spread.score, spread.band) == (plain.alarm, plain.score, plain.band)
    # the window really is 14 days with data: one more would take in the 0% day and change the answer
    wider = DetectConfig(window_days=15)
    assert not evaluate(hist(old + gappy), (867, 1000), wider, "sigma").alarm
    assert judge(old + gappy, (867, 1000), "sigma").alarm


def test_sigma_does_not_judge_days_without_enough_trials() -> None:
    d = judge([(27, 30)] * 14, (0, 3), "sigma")
    assert not d.alarm and "only 3 trials" in d.reason
    assert not judge([(27, 30)] * 14, (0, 0), "sigma").alarm


# --------------------------------------------------------------------------- rule: calibrated


def test_calibrated_perfect_history_then_one_failure_does_not_page() -> None:
    d = judge([(30, 30)] * 63, (29, 30))
    assert not d.alarm
    assert d.baseline is not None and d.baseline > 0.999
    assert d.rate == pytest.approx(29 / 30)
    assert d.reason.startswith("29/30 = 96.7% vs baseline 99.97%")
    assert judge([(30, 30)] * 63, (29, 30), "sigma").alarm  # the contrast that motivates the default


def test_calibrated_clear_drop_pages_with_the_numbers() -> None:
    d = judge([(27, 30)] * 30, (15, 30))
    assert d.alarm
    assert d.rate == 0.5 and d.baseline == pytest.approx((16 * 27 + 0.5) / (16 * 30 + 1))  # days 15-30 ago
    assert d.reason.startswith("15/30 = 50% vs baseline 89.9% (n=480")
    assert f"> h={limits(CFG.false_alarms_per_year).h:.1f}" in d.reason
    assert "\n" not in d.reason
    assert d.band == (0.9, 0.9)


def test_calibrated_short_history_never_pages() -> None:
    d = judge([(27, 30)] * 27, (0, 30))
    assert not d.alarm and d.baseline is None
    assert "not judged, 13 days with data in the baseline (15-70 days ago; needs 14)" in d.reason
    assert judge([(27, 30)] * 28, (0, 30)).alarm  # 14 days with data in the baseline is enough


def test_calibrated_partial_day_is_never_a_drop() -> None:
    d = judge([(27, 30)] * 63, (0, 3))
    assert not d.alarm and d.score == 0.0
    assert "only 3 trials" in d.reason
    assert not judge([(27, 30)] * 63, (0, 0)).alarm


def test_calibrated_sustained_drop_keeps_paging_for_weeks() -> None:
    days = run([(27, 30)] * 60 + [(24, 30)] * 35, 60)
    alarms = [d.alarm for d in days]
    assert alarms[:4] == [False] * 4  # 10 points at 30/day: caught on day 5
    assert all(alarms[4:])
    assert days[-1].baseline < 0.87  # the lagged baseline slowly takes the new level in


def test_calibrated_recovery_resolves_and_stays_resolved() -> None:
    days = run([(27, 30)] * 60 + [(18, 30)] * 5 + [(27, 30)] * 12, 60)
    drop, back = days[:5], days[5:]
    assert [d.alarm for d in drop] == [False, True, True, True, True]
    assert back[0].alarm and "recovery evidence 1.6 of 3" in back[0].reason  # one good day is not enough
    assert [d.alarm for d in back[1:]] == [False] * 11


def test_calibrated_small_drop_recovers_more_slowly_and_halfway_is_still_degraded() -> None:
    base = [(27, 30)] * 60 + [(24, 30)] * 10
    back = [d.alarm for d in run(base + [(27, 30)] * 12, 70)]
    assert back[:3] == [True] * 3 and back[3:] == [False] * 9
    halfway = [d.alarm for d in run(base + [(25, 30)] * 10, 70)]
    assert all(halfway)


def test_calibrated_outage_days_neither_raise_nor_resolve() -> None:
    firing = [(27, 30)] * 60 + [(18, 30)] * 3
    assert judge(firing[:-1], firing[-1]).alarm
    for today in ((0, 0), (0, 3), (3, 3)):
        d = judge(firing, today)
        assert d.alarm and "from earlier days" in d.reason


def test_calibrated_missing_days_are_not_zeros() -> None:
    counts = [(27, 30) if i % 3 else (0, 0) for i in range(90)]
    d = judge(counts, (27, 30))
    assert not d.alarm and d.baseline == pytest.approx(0.9, abs=0.001)
    assert all(not x.alarm for x in run(counts, 30))


def test_calibrated_small_planned_series_is_judged() -> None:
    """A per-canary series at 3 samples a day: 3 trials is a full day there, not an outage."""
    counts = [(2, 3) if i % 5 == 0 else (3, 3) for i in range(60)] + [(0, 3)] * 4
    alarms = [d.alarm for d in run(counts, 60)]
    assert not alarms[0] and alarms[-1]
    assert not judge(counts[:60], (0, 1)).alarm  # 1 of 3 planned: held


def test_overdispersion_is_estimated_and_floored() -> None:
    quiet = judge([(27, 30)] * 60, (27, 30))
    noisy = judge([(30, 30), (20, 30)] * 30, (25, 30))
    rho = [float(r.split("rho=")[1].split(")")[0]) for r in (quiet.reason, noisy.reason)]
    assert rho[0] == CFG.rho_floor and rho[1] > 0.05
    assert not noisy.alarm  # 25/30 is ordinary for a series that swings 20..30


def test_decisions_are_pure_and_deterministic() -> None:
    counts = [(27, 30), (0, 0), (25, 30), (12, 14)] * 20
    before = list(counts)
    a, b = judge(counts, (20, 30)), judge(counts, (20, 30))
    assert a == b and counts == before
    assert judge(counts, (20, 30), "sigma") == judge(counts, (20, 30), "sigma")


# --------------------------------------------------------------------------- internals


def test_beta_binomial_mid_p_matches_direct_sum() -> None:
    def pmf(k: int, n: int, a: float, b: float) -> float:
        return math.comb(n, k) * math.exp(
            math.lgamma(k + a)
            + math.lgamma(n - k + b)
            - math.lgamma(n + a + b)
            + math.lgamma(a + b)
            - math.lgamma(a)
            - math.lgamma(b)
        )

    cases = [(25, 30, 80.0, 9.0), (0, 5, 4.5, 0.5), (100, 100, 990.0, 0.3), (1, 1, 0.7, 0.7)]
    got = mid_p(*(np.array(c) for c in zip(*cases, strict=True)))
    for value, (x, n, a, b) in zip(got, cases, strict=True):
        assert value == pytest.approx(sum(pmf(k, n, a, b) for k in range(x)) + pmf(x, n, a, b) / 2, rel=1e-9)


def test_threshold_matches_the_design_run_length() -> None:
    lim = limits(0.9)
    assert _arl0(lim.h, lim.k) == pytest.approx(365 / 0.9, rel=1e-6)
    assert limits(0.5).h > lim.h > limits(2.0).h
    assert lim.off < lim.h < lim.cap


@pytest.mark.parametrize(("seed", "trials"), [(1, 30), (2, 3), (3, 100), (4, 10)])
def test_stream_gives_the_same_decisions_as_evaluate(seed: int, trials: int) -> None:
    rng = np.random.default_rng(seed)
    level = np.r_[np.full(90, 0.9), np.full(30, 0.75), np.full(20, 0.9)]
    x, n = simulate(rng, len(level), 0.9, trials)
    x = rng.binomial(n, level)  # the drop makes some days fire
    for rule in rules():
        stream = judge_stream(x, n, CFG, rule, start=20)
        counts = list(zip(x.tolist(), n.tolist(), strict=True))
        for i, t in enumerate(range(20, len(counts))):
            d = judge(counts[:t], counts[t], rule)
            assert (d.alarm, d.score) == (bool(stream.alarm[i]), float(stream.score[i])), (rule, t)
        if rule == "calibrated" and trials >= 10:
            assert stream.alarm.any()


def test_seeded_simulation_pages_rarely_in_control() -> None:
    """A weak check of the benchmark's headline (benchmarks/detection.py measures it properly)."""
    rng = np.random.default_rng(7)
    years = 20
    x, n = simulate(rng, 120 + 365 * years, 0.9, 30)

    def episodes(rule: str) -> int:
        a = judge_stream(x, n, CFG, rule, start=120).alarm[n[120:] > 0].astype(int)
        return int(a[0] + np.sum((a[1:] == 1) & (a[:-1] == 0)))

    assert episodes("calibrated") / years <= 1.5
    assert episodes("sigma") / years >= 8
