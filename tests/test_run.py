"""`canary run` end to end: the real CLI, the simulator over HTTP through the real SDKs,
a real SQLite file (and PostgreSQL). Fault cases are asserted by the simulator's request
counts and by what the store holds afterwards."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from canary.config.models import SimBehaviour, SimFault
from canary.sim import SimServer
from canary.store import Store
from tests.cli_helpers import config_with, remote_model, run_cli, script_the_sim
from tests.projects import SIM_CONFIG, SINGLE, WEATHER_TOOL, write_project

KEY = "sk-canary-test-5f1d2c9a7e"


MULTI = """\
id: done-rule
kind: multi_turn
system: End every reply with DONE.
turns:
  - user: First question?
  - user: Second question?
  - user: Third question?
scorers:
  - regex: {pattern: 'DONE$'}
sim:
  turns:
    - {answer: "one DONE"}
    - {answer: "two, and I forgot the rule"}
    - {answer: "three DONE"}
"""

UNICODE = """\
id: unicode
prompt: "Écris « bonjour » en japonais — 日本語で？"
scorers:
  - contains: "こんにちは"
sim:
  answer: "こんにちは ✓ «bonjour» — naïve café 🙂"
"""


@pytest.fixture
def key(monkeypatch) -> str:
    monkeypatch.setenv("CANARY_TEST_KEY", KEY)
    return KEY


def _project(
    tmp_path: Path,
    server: SimServer,
    behaviours: dict[str, SimBehaviour],
    models: str,
    canaries: dict[str, str] | None = None,
    **config,
) -> Path:
    path = write_project(tmp_path, config_with(models, **config), canaries)
    script_the_sim(server, path, behaviours)
    return path


def _samples(tmp_path: Path):
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        return store.samples()


# --------------------------------------------------------------------------- the default path


def test_init_then_run_with_no_keys_records_every_sample(tmp_path, capsys, monkeypatch):
    project = tmp_path / "myproj"
    assert run_cli(capsys, "init", str(project)).code == 0
    monkeypatch.chdir(project)
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    result = run_cli(capsys, "run", "--samples", "1", "--as-of", "2026-01-05")
    assert result.code == 0, result.err
    rows = _samples(project)
    assert len(rows) == 2 * 8  # two sim models x eight shipped canaries
    assert {r.outcome for r in rows} <= {"pass", "fail"}
    assert {r.model_id for r in rows} == {"sim-claude", "sim-gpt"}
    multi = [r for r in rows if r.canary_id == "persistent-instructions"]
    assert all(len(r.turns) == 3 for r in multi)
    tool = next(r for r in rows if r.canary_id == "weather-lookup" and r.outcome == "pass")
    assert tool.turns[0].tool_calls[0].arguments["city"] == "Paris"
    assert all(r.served_model for r in rows)

    shown = run_cli(capsys, "results", "--last", "--json")
    assert shown.code == 0
    assert len(json.loads(shown.out)) == 16


def test_rerun_fills_only_missing_and_force_replaces(tmp_path, capsys, monkeypatch):
    path = write_project(tmp_path, SIM_CONFIG)
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "run", "--as-of", "2026-02-01", "--model", "sim-a").code == 0
    assert len(_samples(tmp_path)) == 1
    again = run_cli(capsys, "run", "--as-of", "2026-02-01")
    assert again.code == 0
    assert len(_samples(tmp_path)) == 2  # only sim-o's slot was missing
    nothing = run_cli(capsys, "run", "--as-of", "2026-02-01")
    assert "nothing to run" in nothing.out
    before = {r.key: r.run_id for r in _samples(tmp_path)}
    forced = run_cli(capsys, "run", "--as-of", "2026-02-01", "--force", "--json")
    assert json.loads(forced.out)["planned"] == 2
    after = {r.key: r.run_id for r in _samples(tmp_path)}
    assert before.keys() == after.keys() and set(before.values()).isdisjoint(after.values())
    other_day = run_cli(capsys, "run", "--as-of", "2026-02-02", "--samples", "2")
    assert other_day.code == 0
    days = sorted({r.day.isoformat() for r in _samples(tmp_path)})
    assert days == ["2026-02-01", "2026-02-02"] and len(_samples(tmp_path)) == 2 + 4
    del path


def test_editing_a_canary_starts_a_new_series(tmp_path, capsys, monkeypatch):
    write_project(tmp_path, SIM_CONFIG)
    monkeypatch.chdir(tmp_path)
    run_cli(capsys, "run", "--as-of", "2026-02-01", "--model", "sim-a")
    (tmp_path / "prompts" / "single.yaml").write_text(SINGLE.replace("France?", "France, please?"))
    assert run_cli(capsys, "run", "--as-of", "2026-02-01", "--model", "sim-a").code == 0
    hashes = {r.canary_hash for r in _samples(tmp_path)}
    assert len(hashes) == 2


# --------------------------------------------------------------------------- faults


def test_401_makes_exactly_one_request_and_exits_69(tmp_path, capsys, server, key, monkeypatch):
    behaviours = {"m401": SimBehaviour(faults=[SimFault(kind="status", status=401)])}
    path = _project(
        tmp_path, server, behaviours, remote_model("claude", "m401", server), samples=3, concurrency=1
    )
    result = run_cli(capsys, "run", "--config", str(path))
    assert result.code == 69
    assert server.stats() == {"m401": 1}
    assert "model claude: HTTP 401" in result.err and "(2 samples skipped)" in result.err
    rows = _samples(tmp_path)
    assert [(r.outcome, r.error_code, r.n_attempts) for r in rows] == [("error", "authentication_error", 1)]


def test_quota_429_is_not_retried(tmp_path, capsys, server, key):
    behaviours = {"mquota": SimBehaviour(faults=[SimFault(kind="quota")])}
    path = _project(tmp_path, server, behaviours, remote_model("gpt", "mquota", server, wire="openai"))
    result = run_cli(capsys, "run", "--config", str(path))
    assert result.code == 69
    assert server.stats() == {"mquota": 1}
    [row] = _samples(tmp_path)
    assert (row.outcome, row.error_code) == ("error", "quota")


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
def test_529_twice_then_success_passes_after_three_requests(tmp_path, capsys, server, key, wire):
    behaviours = {"m529": SimBehaviour(faults=[SimFault(kind="status", status=529, times=2)])}
    path = _project(tmp_path, server, behaviours, remote_model("m", "m529", server, wire=wire))
    assert run_cli(capsys, "run", "--config", str(path)).code == 0
    assert server.stats() == {"m529": 3}
    [row] = _samples(tmp_path)
    assert row.outcome == "pass"
    assert [a.status for a in row.attempts] == [529, 529, 200]


def test_retries_exhausted_is_unavailable_after_attempts_plus_one(tmp_path, capsys, server, key):
    behaviours = {"mdown": SimBehaviour(faults=[SimFault(kind="status", status=503)])}
    path = _project(tmp_path, server, behaviours, remote_model("m", "mdown", server), attempts=3)
    # Unavailability is data, not a run failure; the check that follows pages on it (exit 1).
    assert run_cli(capsys, "run", "--config", str(path), "--no-check").code == 0
    assert server.stats() == {"mdown": 4}
    checked = run_cli(capsys, "check", "--config", str(path))
    assert checked.code == 1 and "availability" in checked.out
    [row] = _samples(tmp_path)
    assert row.outcome == "unavailable" and row.score is None and row.n_attempts == 4


def test_retry_after_over_the_cap_gives_up_without_waiting(tmp_path, capsys, server, key):
    behaviours = {"mslow": SimBehaviour(faults=[SimFault(kind="status", status=429, retry_after_s=3600)])}
    path = _project(tmp_path, server, behaviours, remote_model("m", "mslow", server), max_retry_after_s=5)
    assert run_cli(capsys, "run", "--config", str(path), "--no-check").code == 0
    assert server.stats() == {"mslow": 1}
    [row] = _samples(tmp_path)
    assert row.outcome == "unavailable" and row.attempts[0].retry_after_s == 3600


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
def test_error_mid_stream_is_retried_as_a_service_failure(tmp_path, capsys, server, key, wire):
    behaviours = {"mmid": SimBehaviour(faults=[SimFault(kind="mid_stream", times=1)])}
    path = _project(tmp_path, server, behaviours, remote_model("m", "mmid", server, wire=wire))
    assert run_cli(capsys, "run", "--config", str(path)).code == 0
    assert server.stats() == {"mmid": 2}
    [row] = _samples(tmp_path)
    assert row.outcome == "pass"
    assert row.attempts[0].code == "mid_stream" and row.attempts[0].status == 200


def test_empty_200_is_a_quality_failure_not_an_outage(tmp_path, capsys, server, key):
    behaviours = {"mempty": SimBehaviour(faults=[SimFault(kind="empty")])}
    path = _project(tmp_path, server, behaviours, remote_model("m", "mempty", server))
    assert run_cli(capsys, "run", "--config", str(path)).code == 0
    assert server.stats() == {"mempty": 1}
    [row] = _samples(tmp_path)
    assert row.outcome == "fail" and "empty" in row.reason


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
def test_tool_call_with_invalid_json_arguments_fails(tmp_path, capsys, server, key, wire):
    behaviours = {"mbad": SimBehaviour(faults=[SimFault(kind="bad_tool_args")])}
    path = _project(
        tmp_path,
        server,
        behaviours,
        remote_model("m", "mbad", server, wire=wire),
        canaries={"tool.yaml": WEATHER_TOOL},
    )
    assert run_cli(capsys, "run", "--config", str(path)).code == 0
    [row] = _samples(tmp_path)
    assert row.outcome == "fail"
    assert "json" in row.reason.lower()
    call = row.turns[0].tool_calls[0]
    assert call.arguments is None and call.raw_arguments


def test_tool_call_round_trip_passes(tmp_path, capsys, server, key):
    behaviours = {"mtool": SimBehaviour()}
    path = _project(
        tmp_path,
        server,
        behaviours,
        remote_model("m", "mtool", server, wire="openai"),
        canaries={"tool.yaml": WEATHER_TOOL},
    )
    assert run_cli(capsys, "run", "--config", str(path)).code == 0
    assert server.stats() == {"mtool": 2}  # the call, then the answer after the tool result
    [row] = _samples(tmp_path)
    assert row.outcome == "pass" and len(row.turns) == 2 and "18" in row.turns[1].reply


def test_one_megabyte_answer_is_stored_whole(tmp_path, capsys, server, key):
    behaviours = {"mhuge": SimBehaviour(faults=[SimFault(kind="huge", size=1_000_000)])}
    path = _project(tmp_path, server, behaviours, remote_model("m", "mhuge", server, wire="openai"))
    assert run_cli(capsys, "run", "--config", str(path)).code == 0
    [row] = _samples(tmp_path)
    assert row.outcome == "fail"  # it does not say Paris
    assert len(row.turns[0].reply) == 1_000_000


def test_unicode_round_trips_through_the_store(tmp_path, capsys, server, key):
    behaviours = {"muni": SimBehaviour()}
    path = _project(
        tmp_path, server, behaviours, remote_model("m", "muni", server), canaries={"u.yaml": UNICODE}
    )
    assert run_cli(capsys, "run", "--config", str(path)).code == 0
    [row] = _samples(tmp_path)
    assert row.outcome == "pass"
    assert row.turns[0].reply == "こんにちは ✓ «bonjour» — naïve café 🙂"
    assert row.turns[0].sent == "Écris « bonjour » en japonais — 日本語で？"


def test_multi_turn_records_which_turn_failed(tmp_path, capsys, server, key):
    behaviours = {"mmulti": SimBehaviour()}
    path = _project(
        tmp_path, server, behaviours, remote_model("m", "mmulti", server), canaries={"m.yaml": MULTI}
    )
    assert run_cli(capsys, "run", "--config", str(path)).code == 0
    assert server.stats() == {"mmulti": 3}
    [row] = _samples(tmp_path)
    assert row.outcome == "fail" and row.failed_turn == 2
    assert [t.passed for t in row.turns] == [True, False, True]
    assert row.reason.startswith("turn 2: regex")


def test_error_slots_are_retried_by_the_next_run(tmp_path, capsys, server, key):
    behaviours = {"mflaky": SimBehaviour(faults=[SimFault(kind="status", status=403, times=1)])}
    path = _project(tmp_path, server, behaviours, remote_model("m", "mflaky", server))
    assert run_cli(capsys, "run", "--config", str(path), "--as-of", "2026-03-01").code == 69
    assert [r.outcome for r in _samples(tmp_path)] == ["error"]
    assert run_cli(capsys, "run", "--config", str(path), "--as-of", "2026-03-01").code == 0
    assert [r.outcome for r in _samples(tmp_path)] == ["pass"]
    assert server.stats() == {"mflaky": 2}


# --------------------------------------------------------------------------- errors before any call


def test_missing_key_variable_exits_78_before_any_request(tmp_path, capsys, server, monkeypatch):
    monkeypatch.delenv("CANARY_TEST_KEY", raising=False)
    path = _project(tmp_path, server, {"mk": SimBehaviour()}, remote_model("m", "mk", server))
    for command in ("validate", "run"):
        result = run_cli(capsys, command, "--config", str(path))
        assert result.code == 78
        assert "CANARY_TEST_KEY is not set" in result.err and "Traceback" not in result.err
    assert server.stats() == {}


def test_malformed_yaml_exits_65_with_line_and_no_request(tmp_path, capsys, server, key):
    path = _project(tmp_path, server, {"my": SimBehaviour()}, remote_model("m", "my", server))
    (tmp_path / "prompts" / "broken.yaml").write_text("id: x\nprompt: 'unclosed\nscorers: []\n")
    result = run_cli(capsys, "run", "--config", str(path))
    assert result.code == 65
    assert "prompts/broken.yaml:" in result.err and "invalid YAML" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert server.stats() == {}


def test_unknown_scorer_and_unknown_model_exit_78(tmp_path, capsys, server, key):
    path = _project(tmp_path, server, {"my": SimBehaviour()}, remote_model("m", "my", server))
    assert run_cli(capsys, "run", "--config", str(path), "--model", "nope").code == 78
    (tmp_path / "prompts" / "single.yaml").write_text(SINGLE.replace("contains:", "has_word:"))
    result = run_cli(capsys, "validate", "--config", str(path))
    assert result.code == 78 and "unknown scorer `has_word`" in result.err
    assert server.stats() == {}


# --------------------------------------------------------------------------- secrets


def test_secret_never_reaches_database_output_or_logs(tmp_path, capsys, server, key, caplog):
    caplog.set_level("DEBUG")
    behaviours = {
        "msec401": SimBehaviour(faults=[SimFault(kind="status", status=401)]),
        "msecmid": SimBehaviour(faults=[SimFault(kind="mid_stream", times=1)]),
        "msec529": SimBehaviour(faults=[SimFault(kind="status", status=529)]),
    }
    models = (
        remote_model("a", "msec401", server)
        + remote_model("b", "msecmid", server, wire="openai")
        + remote_model("c", "msec529", server)
    )
    path = _project(tmp_path, server, behaviours, models, attempts=1)
    outputs = [run_cli(capsys, "run", "--config", str(path))]
    outputs.append(run_cli(capsys, "results", "--config", str(path), "--json"))
    outputs.append(run_cli(capsys, "results", "--config", str(path)))
    # The refused model's `config` alert quotes the vendor's error: never the key (tests/test_model_trouble.py).
    for argv in (("check", "--json"), ("alerts", "--json"), ("status", "--json")):
        outputs.append(run_cli(capsys, argv[0], "--config", str(path), *argv[1:]))
    assert outputs[0].code == 69
    assert "a cannot be monitored: HTTP 401" in outputs[-1].out
    text = "".join(o.out + o.err for o in outputs) + caplog.text
    assert KEY not in text
    for name in ("canary.db", "canary.db-wal"):
        file = tmp_path / name
        if file.exists():
            assert KEY.encode() not in file.read_bytes()
    with sqlite3.connect(tmp_path / "canary.db") as conn:
        dump = "\n".join(conn.iterdump())
    assert KEY not in dump


# --------------------------------------------------------------------------- PostgreSQL


def test_run_against_postgresql(tmp_path, capsys, monkeypatch, pg_url):
    write_project(tmp_path, SIM_CONFIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CANARY_STORE", pg_url)
    assert run_cli(capsys, "db", "upgrade").code == 0
    assert run_cli(capsys, "run", "--as-of", "2026-04-01", "--samples", "2").code == 0
    with Store.open(pg_url) as store:
        rows = store.samples()
    assert len(rows) == 4 and {r.outcome for r in rows} == {"pass"}
    assert not (tmp_path / "canary.db").exists()
    shown = run_cli(capsys, "results", "--day", "2026-04-01", "--json")
    assert len(json.loads(shown.out)) == 4


def test_empty_reply_mid_conversation_stops_the_sample_as_failed(tmp_path, capsys, server, key):
    behaviours = {"mmempty": SimBehaviour(faults=[SimFault(kind="empty")])}
    path = _project(
        tmp_path, server, behaviours, remote_model("m", "mmempty", server), canaries={"m.yaml": MULTI}
    )
    assert run_cli(capsys, "run", "--config", str(path)).code == 0
    assert server.stats() == {"mmempty": 1}
    [row] = _samples(tmp_path)
    assert row.outcome == "fail" and row.failed_turn == 1 and len(row.turns) == 1


FORGETFUL = """\
id: keeps-rule
kind: multi_turn
system: End every reply with DONE.
turns:
  - user: One?
  - user: Two?
  - user: Three?
scorers:
  - regex: {pattern: 'DONE$'}
sim:
  turns:
    - {answer: "one DONE", wrong: "one"}
    - {answer: "two DONE", wrong: "two"}
    - {answer: "three DONE", wrong: "three"}
"""


def test_simulated_model_can_forget_the_system_prompt_after_a_turn(tmp_path, capsys, server, key):
    behaviours = {"mforget": SimBehaviour(quality=1.0, forget_after_turn=2)}
    path = _project(
        tmp_path, server, behaviours, remote_model("m", "mforget", server), canaries={"m.yaml": FORGETFUL}
    )
    assert run_cli(capsys, "run", "--config", str(path), "--no-check").code == 0
    [row] = _samples(tmp_path)
    assert [t.passed for t in row.turns] == [True, True, False] and row.failed_turn == 3
