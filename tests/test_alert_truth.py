"""What `check`, `alerts`, `status`, `results` and `export` say must be true: the past never
re-pages, a series without a baseline says so, editing one canary is not the model changing, and
the smaller wrongs of issue 8 part 16. Through the real CLI, the simulator, a real SQLite file and
a real webhook receiver on 127.0.0.1; assertions are on receiver counts, stored rows, exit codes
and parsed JSON."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from canary.config.models import SimBehaviour
from canary.store import Store
from canary.store import alerting as db
from tests.cli_helpers import config_with, remote_model, run_cli, script_the_sim
from tests.projects import write_project
from tests.receivers import HttpReceiver
from tests.test_check import CANARIES, START, alerts_of, check_day, config, day, run_day


def strict_json(text: str):
    """json.loads that refuses Infinity / NaN (which Python would otherwise accept)."""

    def refuse(token: str):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def project(tmp_path, monkeypatch):
    def make(text: str, canaries: dict[str, str] | None = None) -> Path:
        path = write_project(tmp_path, text, CANARIES if canaries is None else canaries)
        monkeypatch.chdir(tmp_path)
        return path

    return make


def webhook(receiver: HttpReceiver) -> str:
    return textwrap.indent(f'webhook: {{url: "{receiver.url("/hook")}"}}\n', "  ")


def hooks(receiver: HttpReceiver) -> list[dict]:
    return [r.json() for r in receiver.received() if r.path == "/hook"]


# --------------------------------------------------------------------------- part 13


def test_the_past_never_repages_or_reopens(tmp_path, capsys, project, http_receiver: HttpReceiver):
    drop, recover = 28, 34
    sim = (
        f"{{quality: 0.97, seed: 3, periods: [{{from: {day(drop)}, to: {day(recover - 1)}, quality: 0.6}}]}}"
    )
    project(config(sim, alerts=webhook(http_receiver)))
    last_firing: dict | None = None
    last = recover + 4
    for n in range(last + 1):
        run_day(capsys, n)
        out = strict_json(check_day(capsys, n).out)
        assert out["history_of"] is None  # each new day moves the lifecycle
        open_quality = [a for a in out["firing"] if a["signal"] == "quality" and a["scope"] == "*"]
        if open_quality:
            last_firing = open_quality[0]
    [episode] = alerts_of(tmp_path, "quality")
    assert episode.state == "resolved" and last_firing is not None
    opened = (episode.opened_day - START).days
    assert drop <= opened < recover
    sent = hooks(http_receiver)
    kinds = [
        e["event"]
        for h in sent
        for e in h["events"]
        if e["signal"] == "quality" and e["scope"] == "all canaries"
    ]
    assert kinds == ["firing", "resolved"]

    # Part 16: the resolved alert keeps the figures of its episode, not the resolving day's.
    listed = strict_json(run_cli(capsys, "alerts", "--all", "--json").out)
    [row] = [r for r in listed if r["signal"] == "quality" and r["scope"] == "*"]
    assert (row["summary"], row["today"], row["baseline"]) == (
        last_firing["summary"],
        last_firing["today"],
        last_firing["baseline"],
    )
    resolved_detail = [e["detail"] for e in row["events"] if e["event"] == "resolved"]
    assert (
        resolved_detail and resolved_detail[0] != row["summary"]
    )  # the recovery's figures live in the event
    # Part 16: no "baseline: 94% baseline" in what the receiver got.
    firing_event = next(
        e for h in sent for e in h["events"] if e["event"] == "firing" and e["signal"] == "quality"
    )
    assert firing_event["baseline"] and "baseline" not in firing_event["baseline"]

    # A check of a day inside the drop, after the episode resolved: history only.
    inside = drop + 2
    result = run_cli(capsys, "check", "--as-of", day(inside), "--json")
    out = strict_json(result.out)
    assert result.code == (1 if out["firing"] else 0), out  # what is open now, nothing reopened
    assert out["history_of"] == day(last) and out["events"] == []
    assert not [a for a in out["firing"] if a["signal"] == "quality" and a["scope"] == "*"]
    assert any(f["signal"] == "quality" for f in out["was_firing"])  # the day's own verdict is still reported
    text = run_cli(capsys, "check", "--as-of", day(inside))
    assert text.code == result.code and "HISTORY" in text.out and "WAS FIRING" in text.out

    # A backfilled run of a day inside the drop (its check included): history too.
    backfill = run_cli(capsys, "run", "--as-of", day(inside - 1), "--force", "-q")
    assert backfill.code == result.code, backfill.err
    assert "HISTORY" in backfill.out

    assert len(hooks(http_receiver)) == len(sent)  # nothing new reached the receiver
    [again] = alerts_of(tmp_path, "quality")
    assert (again.id, again.state, again.notify_count, again.resolved_day) == (
        episode.id,
        "resolved",
        episode.notify_count,
        episode.resolved_day,
    )
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        assert db.queued(store) == []
        events = db.events_of(store, [episode.id])[episode.id]
    assert [e["event"] for e in events].count("opened") == 1 and events[-1]["event"] == "resolved"


def test_a_backfill_never_opens_an_alert_a_later_day_did_not_have(
    tmp_path, capsys, project, http_receiver: HttpReceiver
):
    # The dead man's switch on a past day: day 0 recorded, day 3 judged (nothing ran since day 0,
    # but the project has a run for day 3 by then), so re-judging day 2 changes nothing.
    project(config("{quality: 1.0}", samples=2, alerts=webhook(http_receiver)))
    run_day(capsys, 0)
    run_day(capsys, 3)
    assert check_day(capsys, 3).code == 0
    # day 3's check says the gap since day 0 once (canary.gap), and nothing else
    assert [[e["signal"] for e in h["events"]] for h in hooks(http_receiver)] == [["gap"]]
    result = check_day(capsys, 2)  # day 2 alone would be 48 h after day 0's run: stale
    out = strict_json(result.out)
    assert result.code == 0 and out["history_of"] == day(3) and out["events"] == []
    assert [f["signal"] for f in out["was_firing"]] == ["stale"]
    assert alerts_of(tmp_path, "stale") == [] and len(hooks(http_receiver)) == 1


# --------------------------------------------------------------------------- part 14


def test_a_series_without_a_baseline_says_not_judged_yet(tmp_path, capsys, project):
    project(config("{quality: 1.0}", samples=3))
    for n in range(3):
        run_day(capsys, n)
    result = check_day(capsys, 2)
    out = strict_json(result.out)
    assert result.code == 0
    by_key = {(f["signal"], f["scope"]): f for f in out["not_judged"]}
    quality = by_key[("quality", "*")]
    assert quality["status"] == "held" and quality["warming"] == [0, 14]
    assert quality["summary"] == "drifty quality on all canaries: not judged yet: 0 of 14 baseline days"
    assert (
        by_key[("tokens", "*")]["summary"]
        == "drifty output tokens per task: not judged yet: 2 of 3 baseline days"
    )
    assert {("quality", f"q{i}") for i in range(1, 4)} <= set(by_key)

    text = run_cli(capsys, "check", "--as-of", day(2))
    assert "NOT JUDGED YET drifty quality on all canaries: not judged yet: 0 of 14 baseline days" in text.out
    assert "drifty 3 canaries (q1, q2, q3): not judged yet: 0 of 14 baseline days" in text.out

    status = run_cli(capsys, "status")
    assert status.code == 0
    assert any(
        line.startswith("not judged ") and "drifty quality on all canaries: not judged yet: 0 of 14" in line
        for line in status.out.splitlines()
    ), status.out
    status_json = strict_json(run_cli(capsys, "status", "--json").out)
    assert (
        "drifty quality on all canaries: not judged yet: 0 of 14 baseline days" in status_json["not_judged"]
    )

    assert run_cli(capsys, "report", "--as-of", day(2), "--out", str(tmp_path / "site")).code == 0
    index = (tmp_path / "site" / "index.html").read_text()
    assert "not judged yet" in index and "0 of 14 baseline days" in index
    assert 'data-status="ok"' not in index


def test_once_judged_the_not_judged_line_goes_away(tmp_path, capsys, project):
    text = config("{quality: 1.0}", samples=3) + "detect: {rule: sigma, min_history: 3}\n"
    project(text)
    for n in range(5):
        run_day(capsys, n)
    early = strict_json(check_day(capsys, 2).out)
    assert any(f["warming"] == [2, 3] for f in early["not_judged"] if f["signal"] == "quality")
    later = strict_json(check_day(capsys, 4).out)
    assert later["not_judged"] == []


# --------------------------------------------------------------------------- part 15


def test_editing_one_canary_fires_no_usage_alert_on_the_model(tmp_path, capsys, project):
    project(config("{quality: 1.0}", samples=3))
    for n in range(6):
        run_day(capsys, n)
        assert check_day(capsys, n).code == 0
    # q1 gets new content (a new hash) whose answer is far longer than any before.
    long_answer = "It is 2. " + "Here is a very long explanation of the arithmetic involved. " * 60
    (tmp_path / "prompts" / "c1.yaml").write_text(
        textwrap.dedent(f"""\
        id: q1
        prompt: "Question 1, explained at length: what is 1 + 1?"
        scorers:
          - contains: "2"
        sim:
          answer: "{long_answer}"
        """)
    )
    run_day(capsys, 6)
    result = check_day(capsys, 6)
    out = strict_json(result.out)
    assert result.code == 0, out
    assert out["events"] == [] and out["firing"] == []
    for signal_name in ("tokens", "cost", "latency"):
        assert alerts_of(tmp_path, signal_name) == [], signal_name
    # judged over q2 and q3 (same versions on both sides), not held: the signals did look
    model_wide = {f["signal"] for f in out["not_judged"] if f["scope"] == "*"}
    assert not {"tokens", "cost", "latency"} & model_wide
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        edited = [
            s for s in store.samples(day=START + timedelta(days=6), with_turns=False) if s.canary_id == "q1"
        ]
        before = [
            s for s in store.samples(day=START + timedelta(days=5), with_turns=False) if s.canary_id == "q1"
        ]
    assert edited and min(s.output_tokens for s in edited) > 5 * max(s.output_tokens for s in before)


def test_a_model_wide_token_jump_still_fires(tmp_path, capsys, project):
    sim = f"{{quality: 1.0, periods: [{{from: {day(5)}, token_inflation: 1.8}}]}}"
    project(config(sim, samples=3))
    for n in range(6):
        run_day(capsys, n)
        check_day(capsys, n)
    [tokens] = alerts_of(tmp_path, "tokens")
    assert tokens.opened_day == START + timedelta(days=5) and tokens.state == "firing"


# --------------------------------------------------------------------------- part 16


def test_check_counts_silenced_alerts_and_marks_them(tmp_path, capsys, project):
    sim = f"{{quality: 1.0, periods: [{{from: {day(2)}, served_model: drifty-2}}]}}"
    project(config(sim, samples=2))
    until = (datetime.now(UTC).date() + timedelta(days=3)).isoformat()
    for n in range(2):
        run_day(capsys, n)
        check_day(capsys, n)
    assert run_cli(capsys, "silence", "drifty", "--until", until, "--reason", "vendor migration").code == 0
    run_day(capsys, 2)
    result = check_day(capsys, 2)
    out = strict_json(result.out)
    assert result.code == 0  # silenced: nothing pages
    [alert] = out["firing"]
    assert alert["signal"] == "served_model" and alert["silenced"] is True and out["events"] == []
    text = run_cli(capsys, "check", "--as-of", day(2))
    assert text.code == 0
    assert f"check {day(2)}: 1 alert(s) firing (1 silenced)" in text.out and "SILENCED" in text.out


def test_silence_until_a_past_day_is_refused(tmp_path, capsys, project):
    project(config("{quality: 1.0}", samples=1))
    run_day(capsys, 0)
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    result = run_cli(capsys, "silence", "drifty", "--until", yesterday)
    assert result.code == 64
    assert result.err.count("\n") == 1 and "in the past" in result.err and "Traceback" not in result.err
    today = datetime.now(UTC).date().isoformat()
    assert run_cli(capsys, "silence", "drifty", "--until", today).code == 0  # through the end of today
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        assert [s.until.date() for s in db.list_silences(store, datetime.now(UTC))] == [
            date.fromisoformat(today) + timedelta(days=1)
        ]


def test_openmetrics_lists_the_dead_mans_switch(tmp_path, capsys, project):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    project(config("{quality: 1.0}", samples=1))
    run_day(capsys, 0)
    assert check_day(capsys, 5).code == 1  # nothing ran for five days: the canary is down
    result = run_cli(capsys, "export", "--format", "openmetrics")
    assert result.code == 0
    families = {f.name: f for f in text_string_to_metric_families(result.out)}
    firing = [(s.labels, s.value) for s in families["canary_alerts_firing"].samples]
    assert ({"model": "*", "signal": "stale", "scope": "*"}, 1.0) in firing


def test_results_json_is_valid_with_retry_after_inf(tmp_path, capsys, project):
    text = textwrap.dedent("""\
        store: sqlite:///canary.db
        defaults:
          samples: 1
          timeout_s: 60
          retry: {attempts: 2, backoff_s: [0.001], max_retry_after_s: 1}
        models:
          - id: busy
            provider: sim
            model: busy
            sim: {faults: [{kind: status, status: 529, retry_after_s: .inf}]}
        """)
    project(text, {"c1.yaml": CANARIES["c1.yaml"]})
    assert run_cli(capsys, "run", "--as-of", day(0), "--no-check", "-q").code == 0
    result = run_cli(capsys, "results", "--json")
    assert result.code == 0
    [sample] = strict_json(result.out)
    assert sample["outcome"] == "unavailable"
    [attempt] = sample["attempts"]  # an infinite wait is beyond the cap: one request, no retry
    assert attempt["status"] == 529 and attempt["retry_after_s"] is None


def test_status_counts_the_samples_a_crashed_run_stored(tmp_path, capsys, server, monkeypatch):
    monkeypatch.setenv("CANARY_TEST_KEY", "sk-test-crash")
    slots = 40
    path = write_project(
        tmp_path,
        config_with(remote_model("m", "crashy", server), samples=slots, concurrency=2),
        {"c1.yaml": CANARIES["c1.yaml"]},
    )
    script_the_sim(server, path, {"crashy": SimBehaviour(latency_ms=200)})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "canary", "run", "--config", str(path), "--as-of", day(0), "-q", "--no-check"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def stored() -> int:
        """Committed samples, read on a connection of the test's own (0 before the table exists)."""
        if not (tmp_path / "canary.db").exists():
            return 0
        try:
            with sqlite3.connect(f"file:{tmp_path / 'canary.db'}?mode=ro", uri=True, timeout=30) as conn:
                return int(conn.execute("SELECT count(*) FROM samples").fetchone()[0])
        except sqlite3.Error:
            return 0

    deadline = time.monotonic() + 120
    while stored() < 6:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "no samples stored within 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = stored()
    assert 6 <= kept < slots
    result = run_cli(capsys, "status", "--config", str(path), "--json")
    assert result.code == 0, result.err
    out = strict_json(result.out)
    [crashed] = out["running"]
    assert crashed["status"] == "running" and crashed["process_alive"] is False
    assert (crashed["n_done"], crashed["n_planned"]) == (kept, slots)
    text = run_cli(capsys, "status", "--config", str(path)).out
    assert f"{kept}/{slots} samples" in text and "process gone: crashed" in text


# --------------------------------------------------------------------------- the lifecycle on both stores


def test_a_resolved_episode_is_not_reopened_by_an_older_day(store_url):
    from canary.alerts.findings import Finding
    from canary.alerts.lifecycle import Watched, apply, is_history

    d0 = date(2026, 6, 1)
    at = datetime(2026, 6, 1, 12, tzinfo=UTC)
    watched = Watched({"m"}, {"c1"})
    drop = Finding("m", "*", "quality", "firing", "m 60% vs 95%", today="60% (18/30)", baseline="95%")
    fine = Finding("m", "*", "quality", "ok", "m 96% vs 95%", today="96% (29/30)", baseline="95%")

    def step(finding: Finding, n: int) -> list:
        with store.writing() as conn:
            return apply(
                conn,
                [finding],
                day=d0 + timedelta(days=n),
                now=at + timedelta(days=n),
                repeat_hours=24,
                watched=watched,
            )

    with Store.open(store_url, migrate=True) as store:
        assert [e.event for e in step(drop, 0)] == ["firing"]
        assert [e.event for e in step(fine, 3)] == ["resolved"]
        assert step(drop, 1) == []  # inside the episode, after it resolved: history
        with store.reading() as conn:
            assert is_history(conn, d0 + timedelta(days=2)) and not is_history(conn, d0 + timedelta(days=3))
        [alert] = db.list_alerts(store, include_resolved=True)
        assert (alert.state, alert.notify_count, alert.today) == ("resolved", 1, "60% (18/30)")
        events = db.events_of(store, [alert.id])[alert.id]
        assert [e["event"] for e in events] == ["opened", "notified", "resolved"]
