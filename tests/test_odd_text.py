"""Text a model sends that cannot be stored or shown as sent, end to end through the CLI.

The simulator's `odd_text` fault sends lone surrogates (JSON `\\ud800`), NUL, raw invalid UTF-8,
bidi controls and a usage count no integer column holds, in answers, tool arguments and the
served-model name, on both wires, streaming and not, over real HTTP through the real SDKs, into
a real SQLite file and the real PostgreSQL. Every sample of the run must be stored."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from canary.config.models import SimBehaviour, SimFault
from canary.sim import SimServer
from canary.store import Store
from tests.cli_helpers import CliResult, config_with, remote_model, run_cli, script_the_sim
from tests.projects import SINGLE, WEATHER_TOOL, write_project

KEY = "sk-canary-oddtext-5d1f0a9e"
SAMPLES = 3
RAW_BIDI = re.compile("[\x00\x1b\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CANARY_TEST_KEY", KEY)
    return KEY


def _project(
    tmp_path: Path,
    server: SimServer,
    faults: list[SimFault],
    *,
    wire: str,
    stream: bool,
    samples: int = SAMPLES,
    canaries: dict[str, str] | None = None,
) -> tuple[Path, str]:
    wire_model = f"odd-{uuid.uuid4().hex[:8]}"
    path = write_project(
        tmp_path,
        config_with(
            remote_model("m", wire_model, server, wire=wire), samples=samples, stream=stream, concurrency=1
        ),
        canaries if canaries is not None else {"capital.yaml": SINGLE, "weather.yaml": WEATHER_TOOL},
    )
    script_the_sim(server, path, {wire_model: SimBehaviour(faults=faults)})
    return path, wire_model


def _use_store(capsys, monkeypatch: pytest.MonkeyPatch, path: Path, store_url: str) -> None:
    monkeypatch.setenv("CANARY_STORE", store_url)
    if store_url.startswith("postgresql"):
        assert run_cli(capsys, "db", "upgrade", "--config", str(path)).code == 0


def _results_json(capsys, path: Path) -> tuple[list[dict], CliResult]:
    result = run_cli(capsys, "results", "--config", str(path), "--json")
    assert result.code == 0, result.err
    assert not RAW_BIDI.search(result.out)  # escaped as \uXXXX: the same JSON value
    return json.loads(result.out), result


@pytest.mark.parametrize(
    ("wire", "stream"), [("anthropic", True), ("anthropic", False), ("openai", True), ("openai", False)]
)
def test_odd_text_is_stored_replaced_and_flagged_and_every_sample_kept(
    tmp_path, capsys, monkeypatch, server, key, store_url, wire, stream
):
    faults = [SimFault(kind="odd_text", variant=v, times=1) for v in ("surrogate", "nul", "bidi")]
    path, wire_model = _project(tmp_path, server, faults, wire=wire, stream=stream)
    _use_store(capsys, monkeypatch, path, store_url)

    run = run_cli(capsys, "run", "--config", str(path), "--quiet", "--no-check")
    assert run.code == 0, run.err
    assert "Traceback" not in run.err
    # capital: one request per sample; weather: the call, then the answer after the tool result
    assert server.stats() == {wire_model: SAMPLES + 2 * SAMPLES}

    with Store.open(store_url) as store:
        rows = store.samples()
    assert len(rows) == 2 * SAMPLES  # nothing the model said lost a sample
    assert {r.outcome for r in rows} <= {"pass", "fail"}
    turns = [t for r in rows for t in r.turns]
    flagged = [t for t in turns if t.sanitized]
    # the surrogate and the NUL each hit one reply: stored as U+FFFD, turn and sample flagged
    assert len(flagged) == 2
    for t in flagged:
        text = t.reply + "".join(
            c.raw_arguments + json.dumps(c.arguments, ensure_ascii=False) for c in t.tool_calls
        )
        assert "\ufffd" in text + (t.served_model or "") + (t.fingerprint or "")
    assert {r.key for r in rows if r.sanitized} == {r.key for r in rows if any(t.sanitized for t in r.turns)}
    assert not any("\x00" in t.reply or re.search("[\ud800-\udfff]", t.reply) for t in turns)
    # bidi controls can be stored as sent: kept, not flagged (the report and terminal mark them)
    [bidi] = [t for t in turns if t.served_model and "\u202e" in t.served_model]
    assert not bidi.sanitized and "\u202e" in (bidi.reply + "".join(c.raw_arguments for c in bidi.tool_calls))

    data, _ = _results_json(capsys, path)
    assert len(data) == 2 * SAMPLES
    assert sum(s["sanitized"] for s in data) == len({r.key for r in rows if r.sanitized}) >= 1
    assert sum(t.get("sanitized", False) for s in data for t in s["turns"]) == 2
    table = run_cli(capsys, "results", "--config", str(path))
    assert table.code == 0 and not RAW_BIDI.search(table.out)
    assert "stored as U+FFFD" in table.out


@pytest.mark.parametrize(("wire", "stream"), [("anthropic", False), ("openai", True)])
def test_a_sample_the_database_refuses_is_its_own_harness_error(
    tmp_path, capsys, monkeypatch, server, key, store_url, wire, stream
):
    """A usage count of 10**20 tokens fits no integer column (SQLite raises OverflowError,
    PostgreSQL `integer out of range`): that one sample is stored as harness_error with the
    reason, the other samples of the run are committed, and the run says so with exit 70."""
    samples = 5
    faults = [SimFault(kind="odd_text", variant="huge_usage", times=1)]
    path, wire_model = _project(
        tmp_path, server, faults, wire=wire, stream=stream, samples=samples, canaries={"capital.yaml": SINGLE}
    )
    _use_store(capsys, monkeypatch, path, store_url)

    run = run_cli(capsys, "run", "--config", str(path), "--quiet", "--no-check")
    assert run.code == 70, run.err
    [line] = [ln for ln in run.err.splitlines() if "could not be stored" in ln]
    assert line.startswith("canary: m / capital sample ") and line.endswith("stored as harness_error")
    assert "Traceback" not in run.err and KEY not in run.err
    assert server.stats() == {wire_model: samples}  # nothing was asked twice

    with Store.open(store_url) as store:
        rows = store.samples()
        last = store.last_run()
    assert last is not None and last.status == "finished" and last.n_done == samples
    assert len(rows) == samples
    [bad] = [r for r in rows if r.outcome == "harness_error"]
    assert bad.reason.startswith("could not be stored: ") and bad.error_code == "unstorable"
    assert bad.turns == [] and [a.code for a in bad.attempts] == ["ok"]
    assert sorted(r.outcome for r in rows if r is not bad) == ["pass"] * (samples - 1)

    data, _ = _results_json(capsys, path)
    assert [s["outcome"] for s in data].count("harness_error") == 1

    # The slot is re-run by the next run of the day (harness_error is not final); the fault is spent.
    again = run_cli(capsys, "run", "--config", str(path), "--quiet", "--no-check")
    assert again.code == 0, again.err
    with Store.open(store_url) as store:
        assert sorted(r.outcome for r in store.samples()) == ["pass"] * samples
    assert server.stats() == {wire_model: samples + 1}


@pytest.mark.parametrize(("wire", "stream"), [("anthropic", True), ("openai", False)])
def test_invalid_utf8_in_an_answer_is_stored_replaced_and_flagged(
    tmp_path, capsys, monkeypatch, server, key, wire, stream
):
    """Raw bytes that are not UTF-8 inside the reply's strings: canary reads the body itself
    (canary.providers.body) and keeps them as lone surrogates, which the sanitizer stores as
    U+FFFD with the flag. The answer is kept and judged, not retried as a bad body."""
    faults = [SimFault(kind="odd_text", variant="invalid_utf8", times=1)]
    path, wire_model = _project(
        tmp_path, server, faults, wire=wire, stream=stream, canaries={"capital.yaml": SINGLE}
    )
    run = run_cli(capsys, "run", "--config", str(path), "--quiet", "--no-check")
    assert run.code == 0, run.err
    assert server.stats() == {wire_model: SAMPLES}
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        rows = store.samples()
    assert [r.outcome for r in rows] == ["pass"] * SAMPLES
    assert all(len(r.attempts) == 1 for r in rows)
    [odd] = [r for r in rows if r.sanitized]
    assert "\ufffd" in odd.turns[0].reply and odd.turns[0].sanitized
    assert not any(0xD800 <= ord(ch) <= 0xDFFF for ch in odd.turns[0].reply)
    data, _ = _results_json(capsys, path)
    assert len(data) == SAMPLES


def test_a_bidi_served_model_name_is_shown_as_markers_in_check_and_alerts(tmp_path, capsys, server, key):
    """Day 2 is answered by a model whose name carries a right-to-left override: the
    served-model alert fires, and the terminal shows the override as a marker, never raw."""
    path, wire_model = _project(
        tmp_path, server, [], wire="anthropic", stream=False, samples=2, canaries={"capital.yaml": SINGLE}
    )
    assert (
        run_cli(capsys, "run", "--config", str(path), "--as-of", "2026-05-01", "--quiet", "--no-check").code
        == 0
    )
    script_the_sim(
        server, path, {wire_model: SimBehaviour(faults=[SimFault(kind="odd_text", variant="bidi")])}
    )
    assert (
        run_cli(capsys, "run", "--config", str(path), "--as-of", "2026-05-02", "--quiet", "--no-check").code
        == 0
    )

    check = run_cli(capsys, "check", "--config", str(path), "--as-of", "2026-05-02")
    assert check.code == 1, check.out + check.err  # the served-model alert fires
    assert f"{wire_model}⟨U+202E⟩⟨U+2066⟩evil⟨U+2069⟩⟨U+202C⟩" in check.out
    assert not RAW_BIDI.search(check.out + check.err)
    alerts = run_cli(capsys, "alerts", "--config", str(path))
    assert alerts.code == 0 and "⟨U+202E⟩" in alerts.out and not RAW_BIDI.search(alerts.out)
    table = run_cli(capsys, "results", "--config", str(path))
    assert "⟨U+202E⟩" in table.out and not RAW_BIDI.search(table.out)


@pytest.mark.parametrize(("wire", "stream"), [("anthropic", False), ("openai", True)])
def test_a_lone_surrogate_in_a_tool_name_is_stored_replaced(
    tmp_path, capsys, monkeypatch, server, key, store_url, wire, stream
):
    """The call names no tool the canary knows (so no tool result is fed back and the sample
    fails), and its name is stored with U+FFFD and the flag."""
    faults = [SimFault(kind="odd_text", variant="tool_name", times=1)]
    path, wire_model = _project(
        tmp_path, server, faults, wire=wire, stream=stream, canaries={"w.yaml": WEATHER_TOOL}
    )
    _use_store(capsys, monkeypatch, path, store_url)
    run = run_cli(capsys, "run", "--config", str(path), "--quiet", "--no-check")
    assert run.code == 0, run.err
    assert server.stats() == {wire_model: 1 + 2 * (SAMPLES - 1)}  # the odd call got no tool result
    with Store.open(store_url) as store:
        rows = store.samples()
    assert len(rows) == SAMPLES
    [odd] = [r for r in rows if r.sanitized]
    assert odd.outcome == "fail" and len(odd.turns) == 1 and odd.turns[0].sanitized
    [call] = odd.turns[0].tool_calls
    assert call.name == "get_weather\ufffd" and call.arguments["city"] == "Paris\ufffd"
    assert [r.outcome for r in rows if r is not odd] == ["pass"] * (SAMPLES - 1)
    data, _ = _results_json(capsys, path)
    assert [s["sanitized"] for s in data].count(True) == 1
