"""`canary demo` as a newcomer runs it: a real process, the simulator, SQLite, the report.

The demo's story must hold on a busy host (load average 10 on 2 cores): its latency is the
simulated models' latency, never the wall time this machine happened to take."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, date, datetime

from canary.demo import SimulatedClockStore, simulated_call_s
from canary.records import Attempt, SampleResult, TurnRecord


def test_demo_shows_the_regression_the_outage_and_the_reroute(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "canary", "demo", "--days", "36", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1800,  # a bound against a hang, not a timing check: the demo takes minutes on a busy host
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    firing = re.findall(r"would notify FIRING\s+(.*)", text)
    assert any(f.startswith("opus-4.5 pass rate on all canaries") for f in firing), text[-3000:]
    assert any(f.startswith("gpt-5.1 availability") for f in firing)
    assert not any(f.startswith("gpt-5.1 pass rate") for f in firing)  # an outage is not a regression
    assert any(f.startswith("gateway-sonnet is answered by a different model") for f in firing)
    assert not any(f.startswith("opus-4.6") for f in firing)  # the successor is steady
    # Nothing in the script is about speed: a latency alert could only be the host's load.
    assert not any("p95 latency" in f for f in firing), firing
    index = out / "index.html"
    assert index.is_file() and f"report: {index}" in text
    html = index.read_text(encoding="utf-8")
    for model in ("opus-4.5", "opus-4.6", "gpt-5.1", "gateway-sonnet"):
        assert model in html


def test_demo_store_keeps_simulated_latency_not_wall_time(tmp_path):
    """However slow the host was (99 s a call here), the stored sample says what the simulated
    model takes: its first-token delay plus its output tokens at the simulated speed."""
    now = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
    turns = [
        TurnRecord(1, "hi", reply="a", output_tokens=30, latency_s=99.0),
        TurnRecord(2, "again", reply="b", output_tokens=5, latency_s=99.0),
    ]
    attempts = [
        Attempt(1, now, 99.0, 529, "overloaded", turn=1),
        Attempt(2, now, 99.0, 200, "ok", turn=1),
        Attempt(3, now, 99.0, 200, "ok", turn=2),
    ]
    sample = SampleResult(
        date(2026, 3, 1),
        "m",
        "c",
        "h",
        0,
        "pass",
        now,
        now,
        score=1.0,
        turns=turns,
        attempts=attempts,
        output_tokens=35,
        latency_s=198.0,
    )
    with SimulatedClockStore.open(f"sqlite:///{tmp_path / 'demo.db'}") as store:
        run_id = store.start_run(day=date(2026, 3, 1), model_ids=["m"], n_planned=1)
        assert store.save_sample(run_id, sample)
        (row,) = store.samples(run_id=run_id)
    assert [t.latency_s for t in row.turns] == [simulated_call_s(30), simulated_call_s(5)] == [1.0, 0.5]
    assert [a.latency_s for a in row.attempts] == [0.0, 1.0, 0.5]
    assert row.latency_s == 1.5


def test_a_demo_day_stores_simulated_latency_through_the_real_pipeline(tmp_path):
    """One demo day through the real run pipeline (simulator over HTTP, SDKs, sample writer):
    every stored call took its simulated time, so host load cannot reach the latency signal."""
    from datetime import timedelta

    from canary.config.load import load_project
    from canary.demo import DemoPlan, write_project
    from canary.pipeline import RunOptions
    from canary.pipeline import run as run_day

    plan = DemoPlan.for_days(30, date(2026, 3, 30))
    project = load_project(write_project(tmp_path, 30, plan))
    day = plan.start + timedelta(days=1)
    with SimulatedClockStore.open(project.store_url, base_dir=project.root) as store:
        run_day(project, RunOptions(as_of=day, quiet=True), store=store)
        rows = store.samples(day=day)
    scored = [r for r in rows if r.outcome in ("pass", "fail")]
    assert len(rows) == len(project.config.models) * len(project.canaries) * 3 and scored
    for row in scored:
        assert [t.latency_s for t in row.turns] == [simulated_call_s(t.output_tokens) for t in row.turns]
        assert row.latency_s == round(sum(simulated_call_s(t.output_tokens) for t in row.turns), 3)
