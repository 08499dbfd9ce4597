"""How often each detection rule pages in control, and how fast it catches a real drop.

Simulated series: each day's pass rate is drawn from a Beta around the series' level with
intra-day correlation ICC = 0.01 (day-to-day overdispersion), then passes ~ Binomial(trials,
that rate). 5 % of days have no data; 10 % are partial (trials/6 .. trials/2, e.g. 5-15 of 30).
Pass rates 0.7, 0.9, 0.99 x trials/day 10, 30, 100.

Counting (printed with the results):
  false alarms  alarm EPISODES per series-year in control: a run of consecutive alarm days is
                one false alarm; days without data neither start nor end a run. Counted over
                365-day years after a 120-day warm-up that is not counted.
  delay         the level drops by 5/10/20/30 points after a 60-day burn-in and stays down.
                delay = days from the change day to the first alarm, the change day counting as
                day 1. Runs already alarming on the day before the change are left out (their
                share is printed). Not caught within 60 days: counted as > 60.

The calibrated rule is judged with `canary.detect.stream.judge_stream`, which shares every
line of arithmetic with `evaluate`; a sample of days is re-judged through `evaluate` itself
and must agree exactly. The sigma rule is judged through its shipped decision function.

    python benchmarks/detection.py [--years N] [--seed S] [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from canary.config.models import DetectConfig
from canary.detect import evaluate
from canary.detect.stream import judge_stream

ICC, MISSING, PARTIAL = 0.01, 0.05, 0.10
RATES, TRIALS, DROPS = (0.7, 0.9, 0.99), (10, 30, 100), (0.05, 0.10, 0.20, 0.30)
TARGET = (0.9, 30)
WARMUP, BURN, HORIZON = 120, 60, 60
RULES = {"calibrated": "calibrated (default)", "sigma": "sigma (2 sd, 14 days)"}
LIMITS = {0.10: (5, 12), 0.20: (2, 4), 0.30: (2, 3)}  # drop: (median, p90) days
RECOVERY = ((0.10, 28), (0.20, 28), (0.40, 6))  # (drop, days down) at the target scenario
MAX_FA = 1.0


@dataclass(frozen=True)
class Sizes:
    years: int  # in-control series-years per scenario (calibrated)
    runs: int  # drop runs per scenario and drop size (calibrated)
    sigma_years: int
    sigma_runs: int
    target_factor: int  # the target scenario gets this many times more


def simulate(rng: np.random.Generator, level: np.ndarray, trials: int) -> tuple[np.ndarray, np.ndarray]:
    """(passes, trials) per day for the given daily level."""
    days = len(level)
    conc = 1.0 / ICC - 1.0
    p = rng.beta(level * conc, (1.0 - level) * conc)
    n = np.full(days, trials)
    partial = rng.random(days) < PARTIAL
    lo, hi = max(1, round(trials / 6)), max(1, round(trials / 2))
    n[partial] = rng.integers(lo, hi + 1, int(partial.sum()))
    n[rng.random(days) < MISSING] = 0
    return rng.binomial(n, p), n


def episodes(alarm: np.ndarray, trials: np.ndarray) -> int:
    """Runs of consecutive alarm days, looking only at days with data."""
    a = alarm[trials > 0].astype(np.int8)
    return int(a[0] + np.sum((a[1:] == 1) & (a[:-1] == 0))) if len(a) else 0


def false_alarms(rule: str, rate: float, trials: int, years: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    x, n = simulate(rng, np.full(WARMUP + 365 * years, rate), trials)
    d = judge_stream(x, n, DetectConfig(), rule, start=WARMUP)
    return episodes(d.alarm, n[WARMUP:]) / years


def _sigma_first_alarm(x: np.ndarray, n: np.ndarray, cfg: DetectConfig) -> tuple[bool, float]:
    """Stateless rule: judge the day before the change, then day by day until the first alarm."""
    counts = list(zip(x.tolist(), n.tolist(), strict=True))
    days = [(date(2000, 1, 1) + timedelta(days=i), p, t) for i, (p, t) in enumerate(counts)]
    if evaluate(days[: BURN - 1], counts[BURN - 1], cfg, "sigma").alarm:
        return True, math.nan
    for k in range(HORIZON):
        t = BURN + k
        if evaluate(days[:t], counts[t], cfg, "sigma").alarm:
            return False, float(k + 1)
    return False, math.inf


def delays(
    rule: str, rate: float, trials: int, drop: float, runs: int, seed: int
) -> tuple[np.ndarray, float]:
    """Delays of the caught-or-not runs, and the share of runs left out (alarming before the change)."""
    rng = np.random.default_rng(seed)
    cfg = DetectConfig()
    level = np.r_[np.full(BURN, rate), np.full(HORIZON, max(rate - drop, 0.001))]
    out, excluded = [], 0
    for _ in range(runs):
        x, n = simulate(rng, level, trials)
        if rule == "sigma":
            before, delay = _sigma_first_alarm(x, n, cfg)
        else:
            d = judge_stream(x, n, cfg, rule, start=BURN - 1)
            before = bool(d.alarm[0])
            hit = np.flatnonzero(d.alarm[1:])
            delay = float(hit[0] + 1) if len(hit) else math.inf
        if before:
            excluded += 1
        else:
            out.append(delay)
    return np.array(out), excluded / runs


def recovery(
    rate: float, trials: int, drop: float, down: int, runs: int, seed: int
) -> tuple[float, float, np.ndarray]:
    """A drop lasting `down` days, then back: (re-fires per caught drop while it lasts, share of
    days firing from detection to the end of the drop, days to resolve once back)."""
    rng = np.random.default_rng(seed)
    cfg = DetectConfig()
    level = np.r_[np.full(90, rate), np.full(down, rate - drop), np.full(HORIZON, rate)]
    refires, share, resolve = [], [], []
    for _ in range(runs):
        x, n = simulate(rng, level, trials)
        d = judge_stream(x, n, cfg, "calibrated", start=90)
        during, seen = d.alarm[:down], n[90 : 90 + down] > 0
        hit = np.flatnonzero(during)
        if not len(hit):
            continue
        a = during[hit[0] :][seen[hit[0] :]].astype(np.int8)
        refires.append(int(np.sum((a[1:] == 1) & (a[:-1] == 0))))
        share.append(float(a.mean()))
        off = np.flatnonzero(~d.alarm[down:])
        resolve.append(float(off[0] + 1) if len(off) else math.inf)
    return float(np.mean(refires)), float(np.mean(share)), np.array(resolve)


def quantile(values: np.ndarray, q: float) -> float:
    """A sample value (no interpolation), so infinities stay meaningful."""
    if len(values) == 0:
        return math.nan
    s = np.sort(values)
    return float(s[max(0, math.ceil(q * len(s)) - 1)])


def validate(seed: int) -> tuple[int, int]:
    """Re-judge a sample of days through `evaluate` and compare with the stream: (checked, differing)."""
    rng = np.random.default_rng(seed)
    cfg = DetectConfig()
    level = np.r_[np.full(300, 0.9), np.full(60, 0.8), np.full(40, 0.9)]
    x, n = simulate(rng, level, 30)
    d = judge_stream(x, n, cfg, "calibrated")
    days = [
        (date(2000, 1, 1) + timedelta(days=i), int(p), int(t))
        for i, (p, t) in enumerate(zip(x, n, strict=True))
    ]
    picks = np.sort(rng.choice(np.arange(40, len(x)), size=120, replace=False))
    bad = 0
    for t in picks:
        e = evaluate(days[:t], (int(x[t]), int(n[t])), cfg, "calibrated")
        bad += (e.alarm != bool(d.alarm[t])) or (e.score != float(d.score[t]))
    return len(picks), bad


def perfect_then_one_failure(rule: str) -> bool:
    days = [(date(2000, 1, 1) + timedelta(days=i), 30, 30) for i in range(63)]
    return evaluate(days, (29, 30), DetectConfig(), rule).alarm


def _task(spec: tuple) -> tuple[tuple, object]:
    kind, rule, rate, trials, extra, size, seed = spec
    if kind == "fa":
        return spec, false_alarms(rule, rate, trials, size, seed)
    if kind == "recovery":
        return spec, recovery(rate, trials, extra[0], extra[1], size, seed)
    return spec, delays(rule, rate, trials, extra, size, seed)


def tasks(sizes: Sizes, seed: int) -> list[tuple]:
    out = []
    for i, (rate, trials) in enumerate((r, t) for r in RATES for t in TRIALS):
        boost = sizes.target_factor if (rate, trials) == TARGET else 1
        for rule in RULES:
            years = (sizes.years if rule == "calibrated" else sizes.sigma_years) * boost
            runs = (sizes.runs if rule == "calibrated" else sizes.sigma_runs) * boost
            out.append(("fa", rule, rate, trials, None, years, seed * 1000 + i * 10))
            for j, drop in enumerate(DROPS):
                out.append(("delay", rule, rate, trials, drop, runs, seed * 1000 + i * 10 + j + 1))
    for j, (drop, down) in enumerate(RECOVERY):
        out.append(("recovery", "calibrated", *TARGET, (drop, down), sizes.runs // 2, seed * 1000 + 900 + j))
    return sorted(out, key=lambda s: -(s[5] * (30 if s[1] == "sigma" else 1)))  # big jobs first


def cell(values: np.ndarray) -> str:
    med, p90 = quantile(values, 0.5), quantile(values, 0.9)

    def fmt(v: float) -> str:
        return f">{HORIZON}" if math.isinf(v) else f"{v:.0f}"

    return "n/a" if math.isnan(med) else f"{fmt(med)} ({fmt(p90)})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--years", type=int, default=None, help="in-control series-years per scenario")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="small samples: a smoke run, not a measurement")
    args = ap.parse_args(argv)
    sizes = Sizes(40, 100, 4, 40, 5) if args.quick else Sizes(500, 1000, 20, 200, 5)
    if args.years:
        sizes = Sizes(args.years, sizes.runs, max(1, args.years // 13), sizes.sigma_runs, sizes.target_factor)
    started = time.perf_counter()
    results: dict[tuple, object] = {}
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        for spec, value in pool.map(_task, tasks(sizes, args.seed)):
            results[spec[:5]] = value
    checked, differing = validate(args.seed)
    perfect = {rule: perfect_then_one_failure(rule) for rule in RULES}
    elapsed = time.perf_counter() - started

    print(f"# Detection benchmark (seed {args.seed}{', quick' if args.quick else ''})\n")
    print(
        f"ICC {ICC}, {MISSING:.0%} days without data, {PARTIAL:.0%} partial days. False alarms: alarm "
        f"episodes (runs of consecutive alarm days; days without data neither start nor end one) per "
        f"series-year after a {WARMUP}-day warm-up. Delay: days from the change (after a {BURN}-day "
        f"burn-in) to the first alarm, the change day counting as day 1, median (p90); >{HORIZON}: not "
        f"caught within {HORIZON} days. Calibrated: {sizes.years} series-years and {sizes.runs} runs "
        f"per cell ({sizes.target_factor}x at {TARGET[0]}/{TARGET[1]}); sigma: {sizes.sigma_years} "
        f"series-years and {sizes.sigma_runs} runs.\n"
    )
    print(
        "| rule | pass rate | trials/day | false alarms / series-year | "
        + " | ".join(f"{round(d * 100)}-pt drop" for d in DROPS)
        + " |"
    )
    print("|---|---|---|---|" + "---|" * len(DROPS))
    excluded = []
    for rate in RATES:
        for trials in TRIALS:
            for rule, label in RULES.items():
                fa = results[("fa", rule, rate, trials, None)]
                cells = []
                for drop in DROPS:
                    values, share = results[("delay", rule, rate, trials, drop)]
                    excluded.append((rule, share))
                    cells.append(cell(values))
                print(f"| {label} | {rate:.2f} | {trials} | {fa:.2f} | " + " | ".join(cells) + " |")
    print()
    for rule, label in RULES.items():
        shares = [s for r, s in excluded if r == rule]
        print(
            f"- {label}: runs left out for alarming on the day before the change: "
            f"{np.mean(shares):.1%} on average"
        )
    for rule, label in RULES.items():
        print(f"- 63 days at 30/30, then 29/30: {label} {'ALARMS' if perfect[rule] else 'no alarm'}")
    for drop, down in RECOVERY:
        refires, share, resolve = results[("recovery", "calibrated", *TARGET, (drop, down))]
        print(
            f"- calibrated, {round(drop * 100)}-pt drop for {down} days at {TARGET[0]}/{TARGET[1]}: firing on "
            f"{share:.0%} of days from detection to the drop's end, {refires:.2f} re-fires per drop; "
            f"resolved {cell(resolve)} days after the level returns (median (p90))"
        )
    print(
        f"- `evaluate` re-judged {checked} days of a stream: {differing} differ from the benchmarked decisions"
    )
    print(f"- runtime {elapsed:.1f} s\n")

    rate, trials = TARGET
    verdicts = [
        (
            f"false alarms <= {MAX_FA:g}/series-year at {rate}/{trials}",
            results[("fa", "calibrated", rate, trials, None)] <= MAX_FA,
        )
    ]
    for drop, (med_max, p90_max) in LIMITS.items():
        values, _ = results[("delay", "calibrated", rate, trials, drop)]
        med, p90 = quantile(values, 0.5), quantile(values, 0.9)
        verdicts.append(
            (
                f"{round(drop * 100)}-pt drop at {rate}/{trials}: median {med:g} <= {med_max}, "
                f"p90 {p90:g} <= {p90_max} (caught by day {med_max}: {np.mean(values <= med_max):.1%}, "
                f"by day {p90_max}: {np.mean(values <= p90_max):.1%})",
                med <= med_max and p90 <= p90_max,
            )
        )
    for other in RATES:
        if other != rate:
            fa = results[("fa", "calibrated", other, trials, None)]
            verdicts.append(
                (f"false alarms <= {MAX_FA:g}/series-year at {other}/{trials} ({fa:.2f})", fa <= MAX_FA)
            )
    verdicts.append(("no alarm for 63 perfect days then 29/30", not perfect["calibrated"]))
    verdicts.append(("benchmarked decisions identical to `evaluate`", differing == 0))
    for text, ok in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  calibrated (default config): {text}")
    return 0 if all(ok for _, ok in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
