"""`canary demo`: a simulated month, end to end, with no keys.

Four simulated models, modelled on things that happen to hosted models:
- `opus-4.5` silently regresses a week into the month: single answers get worse and, in
  conversations, the system prompt's rule is dropped after the second turn;
- `opus-4.6`, its successor, is steady at the same price with fewer output tokens;
- `gpt-5.1` has a two-day incident of 529 overloaded errors: an availability alert, no quality one;
- `gateway-sonnet` is silently routed to another model behind a gateway.
Every simulated day runs, checks and prints what would be notified; then the report is written.

Latency is simulated too. The whole month runs in a minute on whatever computer runs the demo, so
the wall time of a call measures that computer (a busy CI host made every model "slower"), not a
model. The demo's store records each call as taking what the simulated model would take: a first
token after `FIRST_TOKEN_S`, then its output tokens at `TOKENS_PER_S`. Same seeds, same latencies."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from canary.check import run_check
from canary.config.load import load_project
from canary.pipeline import RunOptions, utc_today
from canary.pipeline import run as run_day
from canary.records import SampleResult
from canary.scaffold import scaffold
from canary.store import Store

CONFIG = """\
# Written by `canary demo`: four simulated models over {days} days ({start} to {end}).
store: sqlite:///demo.db
defaults:
  samples: 3
  concurrency: 32
  global_concurrency: 128
  timeout_s: 60  # generous: the host may be busy, and nothing in the script hangs
  stream: false
  params: {{max_tokens: 512}}
  retry: {{attempts: 1, backoff_s: [0.001], max_retry_after_s: 1}}
models:
  - id: opus-4.5
    provider: sim
    protocol: anthropic
    model: claude-opus-4-5
    price: {{input_per_mtok: 5, output_per_mtok: 25}}
    retires: {retires}
    sim:
      quality: 0.96
      seed: 11
      periods:
        - {{from: {regression}, quality: 0.72, forget_after_turn: 2}}
  - id: opus-4.6
    provider: sim
    protocol: anthropic
    model: claude-opus-4-6
    price: {{input_per_mtok: 5, output_per_mtok: 25}}
    sim: {{quality: 0.97, token_inflation: 0.75, seed: 12}}
  - id: gpt-5.1
    provider: sim
    protocol: openai
    model: gpt-5.1
    price: {{input_per_mtok: 1.25, output_per_mtok: 10}}
    sim:
      quality: 0.94
      fingerprint: fp_5d1a
      seed: 13
      faults:
        - {{kind: status, status: 529, from: {incident}, to: {incident_end}, retry_after_s: 0.001}}
  - id: gateway-sonnet
    provider: sim
    protocol: openai
    model: anthropic/claude-sonnet-4.5
    price: {{input_per_mtok: 3, output_per_mtok: 15}}
    sim:
      quality: 0.95
      fingerprint: fp_gw_a
      seed: 14
      periods:
        - {{from: {reroute}, served_model: anthropic/claude-haiku-4.5, fingerprint: fp_gw_b, quality: 0.9}}
alerts:
  log: false
  repeat_hours: 168
"""


FIRST_TOKEN_S = 0.4  # simulated time to the first token of every call
TOKENS_PER_S = 50.0  # simulated output speed


def simulated_call_s(output_tokens: int) -> float:
    """How long a simulated call takes: independent of the host, the load and the clock."""
    return round(FIRST_TOKEN_S + output_tokens / TOKENS_PER_S, 3)


def with_simulated_latency(sample: SampleResult) -> SampleResult:
    """The sample with every successful call timed by `simulated_call_s`; failed attempts take 0 s
    (the simulator fails at once). The sample's latency stays the sum over its successful calls."""
    turns = [replace(t, latency_s=simulated_call_s(t.output_tokens)) for t in sample.turns]
    by_turn = {t.index: t.latency_s for t in turns}
    attempts = [
        replace(a, latency_s=by_turn.get(a.turn, 0.0) if a.code == "ok" else 0.0) for a in sample.attempts
    ]
    return replace(sample, turns=turns, attempts=attempts, latency_s=round(sum(by_turn.values()), 3))


class SimulatedClockStore(Store):
    """The demo's store: samples are kept with simulated latency instead of wall time."""

    def save_sample(self, run_id: str, sample: SampleResult, **options: Any) -> bool:
        return super().save_sample(run_id, with_simulated_latency(sample), **options)


@dataclass(frozen=True)
class DemoPlan:
    start: date
    end: date
    regression: date
    incident: date
    reroute: date
    retires: date

    @classmethod
    def for_days(cls, days: int, end: date) -> DemoPlan:
        start = end - timedelta(days=days - 1)
        month = max(start + timedelta(days=days - 30), start)  # the last 30 days are "the month"
        # The default detector judges a series once it has four weeks of history (a 14-day
        # baseline that ends 14 days back), so nothing is scripted before that.
        regression = max(month + timedelta(days=7), start + timedelta(days=29))
        incident = max(month + timedelta(days=14), regression + timedelta(days=4))
        reroute = max(month + timedelta(days=20), incident + timedelta(days=4))
        return cls(
            start, end, min(regression, end), min(incident, end), min(reroute, end), end + timedelta(days=10)
        )


def write_project(folder: Path, days: int, plan: DemoPlan) -> Path:
    scaffold(folder, force=True)
    config = CONFIG.format(
        days=days,
        start=plan.start,
        end=plan.end,
        regression=plan.regression,
        incident=plan.incident,
        incident_end=plan.incident + timedelta(days=1),
        reroute=plan.reroute,
        retires=plan.retires,
    )
    (folder / "canary.yaml").write_text(config, encoding="utf-8")
    return folder / "canary.yaml"


def run_demo(days: int, out: Path, *, echo: Callable[[str], None] = print, end: date | None = None) -> Path:
    if days < 30:
        raise ValueError("the demo needs at least 30 days (four weeks of history, then the month's events)")
    end = end or utc_today() - timedelta(days=1)
    plan = DemoPlan.for_days(days, end)
    started = time.monotonic()
    workspace = Path(tempfile.mkdtemp(prefix="canary-demo-"))
    try:
        project = load_project(write_project(workspace, days, plan))
        echo(
            f"canary demo: {days} simulated days, {plan.start} to {plan.end}; "
            f"{len(project.config.models)} models x {len(project.canaries)} canaries x 3 samples a day"
        )
        echo(
            f"  scripted: opus-4.5 regresses from {plan.regression}; gpt-5.1 is overloaded on {plan.incident} "
            f"and the day after; gateway-sonnet is re-routed from {plan.reroute}"
        )
        with SimulatedClockStore.open(project.store_url, base_dir=project.root) as store:
            for offset in range(days):
                day = plan.start + timedelta(days=offset)
                report = run_day(project, RunOptions(as_of=day, quiet=True), store=store)
                checked = run_check(project, store, as_of=day, channels=[])
                rates = _rates(report.stats.samples)
                echo(f"{day}  " + "  ".join(f"{m} {r}" for m, r in rates))
                for event in checked.events:
                    if event.event != "repeat":
                        echo(f"            would notify {event.event.upper():<8} {event.summary}")
                reminders = sum(e.event == "repeat" for e in checked.events)
                if reminders:
                    echo(f"            would remind of {reminders} alert(s) still firing")
            from canary.report import write_report

            index = write_report(project, store, out=out, days=days, today=plan.end)
        echo(f"done in {time.monotonic() - started:.1f} s; report: {index}")
        return index
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


def _rates(samples) -> list[tuple[str, str]]:
    by_model: dict[str, list[int]] = {}
    for s in samples:
        counts = by_model.setdefault(s.model_id, [0, 0, 0])
        counts[0] += s.outcome == "pass"
        counts[1] += s.outcome in ("pass", "fail")
        counts[2] += s.outcome == "unavailable"
    out = []
    for model, (passes, scored, unavailable) in sorted(by_model.items()):
        text = f"{passes / scored:4.0%}" if scored else "  - "
        if unavailable:
            text += f" ({unavailable} unavailable)"
        out.append((model, text))
    return out
