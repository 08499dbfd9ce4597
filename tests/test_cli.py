"""CLI surface: init, validate, help, the standalone simulator process, start-up imports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_helpers import run_cli
from tests.projects import SIM_CONFIG, write_project

REPO = Path(__file__).resolve().parents[1]


def test_init_creates_a_runnable_project_and_refuses_to_overwrite(tmp_path, capsys):
    target = tmp_path / "proj"
    first = run_cli(capsys, "init", str(target))
    assert first.code == 0 and "canary run" in first.out
    for name in ("canary.yaml", "prompts/tools.yaml", "prompts/instructions.yaml", "scorers/style.py"):
        assert (target / name).is_file(), name
    assert (target / "reports").is_dir()
    again = run_cli(capsys, "init", str(target))
    assert again.code == 73 and "--force" in again.err
    assert run_cli(capsys, "init", str(target), "--force").code == 0
    valid = run_cli(capsys, "validate", "--config", str(target / "canary.yaml"))
    assert valid.code == 0
    assert valid.out.startswith("ok: 8 canaries (3 multi_turn") or "8 canaries" in valid.out


def test_every_command_has_help(capsys):
    for command in (
        ["run"],
        ["init"],
        ["validate"],
        ["results"],
        ["sim", "serve"],
        ["db", "upgrade"],
        ["db", "current"],
    ):
        result = run_cli(capsys, *command, "--help")
        assert result.code == 0 and "Usage: canary" in result.out, command


def test_options_come_from_canary_environment_variables(tmp_path, capsys, monkeypatch):
    write_project(tmp_path, SIM_CONFIG)
    monkeypatch.setenv("CANARY_CONFIG", str(tmp_path / "canary.yaml"))
    monkeypatch.setenv("CANARY_RUN_SAMPLES", "2")
    monkeypatch.setenv("CANARY_RUN_AS_OF", "2026-05-01")
    result = run_cli(capsys, "run", "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["day"] == "2026-05-01" and summary["planned"] == 4


def test_bad_date_is_a_usage_error_not_a_traceback(tmp_path, capsys):
    write_project(tmp_path, SIM_CONFIG)
    result = run_cli(capsys, "run", "--config", str(tmp_path / "canary.yaml"), "--as-of", "yesterday")
    assert result.code == 2 and "YYYY-MM-DD" in result.err and "Traceback" not in result.err


def test_missing_config_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli(capsys, "run")
    assert result.code == 66 and "canary init" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_startup_imports_neither_sdk_nor_database_layer():
    code = "import sys, canary.cli; canary.cli.main(['--help'])"
    probe = (
        "import sys, runpy\n"
        "try:\n"
        f"    exec({code!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('anthropic', 'openai', 'sqlalchemy', 'alembic', 'aiohttp', 'numpy') if m in sys.modules]\n"
        "print('HEAVY:' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "HEAVY:"


def test_stages_import_only_earlier_stages():
    """config -> plan -> run -> score -> store: a stage must not import a later one."""
    order = ["config", "scoring", "plan", "providers", "retry", "conversation", "runner", "store"]
    # Loading a project binds each canary's scorer entries, so a bad scorer fails before any call.
    allowed_late = {"config": {"scoring"}}
    package = REPO / "canary"
    for stage in order:
        files = (
            list((package / stage).rglob("*.py")) if (package / stage).is_dir() else [package / f"{stage}.py"]
        )
        later = set(order[order.index(stage) + 1 :]) - allowed_late.get(stage, set())
        for file in files:
            text = file.read_text()
            for other in later | {"pipeline", "cli"}:
                assert f"from canary.{other}" not in text and f"import canary.{other}" not in text, (
                    file,
                    other,
                )


def test_sim_serve_runs_standalone_and_stops_on_sigterm(tmp_path):
    import socket

    import openai

    write_project(tmp_path, SIM_CONFIG)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "canary",
            "sim",
            "serve",
            "--port",
            str(port),
            "--config",
            str(tmp_path / "canary.yaml"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        client = openai.OpenAI(api_key="k", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
        reply = client.chat.completions.create(
            model="sim-o",
            max_tokens=100,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
        )
        assert "Paris" in reply.choices[0].message.content
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


@pytest.mark.parametrize("command", [["db", "current"]])
def test_db_current_reports_revision(tmp_path, capsys, command):
    write_project(tmp_path, SIM_CONFIG)
    result = run_cli(capsys, *command, "--config", str(tmp_path / "canary.yaml"))
    assert result.code == 0 and "revision" in result.out
