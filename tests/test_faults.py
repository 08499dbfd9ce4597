"""Faults end to end: a `canary run` killed mid-run, a locked or full SQLite file, a PostgreSQL
connection dropped under a run. Each goes through the real CLI (a subprocess where a process has
to die or be watched from outside), the simulator over real HTTP, and real databases; what
survived is read back from the store and what was re-asked from the simulator's request counts."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from canary.config.models import SimBehaviour
from canary.sim import SimScript, SimServer
from canary.store import Store
from tests.cli_helpers import config_with, remote_model, run_cli, script_the_sim
from tests.projects import write_project

KEY = "sk-canary-fault-7c3e91d0b2"
DAY = "2026-05-04"
REPO = Path(__file__).resolve().parent.parent
SLOTS = 60


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer(SimScript(behaviours={})).start() as srv:
        yield srv


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CANARY_TEST_KEY", KEY)
    return KEY


def _project(tmp_path: Path, server: SimServer, wire_model: str, *, wire: str = "anthropic",
             latency_ms: int = 0, samples: int = SLOTS, concurrency: int = 4) -> Path:
    path = write_project(
        tmp_path,
        config_with(remote_model("m", wire_model, server, wire=wire), samples=samples, concurrency=concurrency),
    )
    script_the_sim(server, path, {wire_model: SimBehaviour(latency_ms=latency_ms)})
    return path


def _spawn(path: Path, *args: str, store_url: str | None = None) -> subprocess.Popen[str]:
    """`python -m canary run` in its own process, as cron would start it."""
    env = {**os.environ, "CANARY_TEST_KEY": KEY, "PYTHONPATH": str(REPO)}
    if store_url is not None:
        env["CANARY_STORE"] = store_url
    return subprocess.Popen(
        [sys.executable, "-m", "canary", "run", "--config", str(path), "--as-of", DAY, "--quiet", "--no-check", *args],
        cwd=path.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str, limit_s: float = 60) -> None:
    """Poll until `condition` holds; fail (with the child's stderr) if the child exits first."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"`canary run` exited {proc.returncode} before {what}: {proc.stderr.read()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def _count(url: str) -> Callable[[], int]:
    """Committed samples, read through a connection of the test's own (0 before the table exists)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)

    def count() -> int:
        try:
            with engine.connect() as conn:
                return int(conn.execute(sa.text("SELECT count(*) FROM samples")).scalar_one())
        except sa.exc.DBAPIError:
            return 0

    return count


def _snapshot(store: Store) -> dict[tuple[str, str, str, int], tuple[int, str, object, str]]:
    return {r.key: (r.id, r.outcome, r.finished_at, r.run_id) for r in store.samples(with_turns=False)}


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text and KEY not in text
    return lines[0]


# --------------------------------------------------------------------------- kill -9, then resume


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_killed_run_resumes_with_only_the_missing_slots(request, tmp_path, capsys, monkeypatch, server, key,
                                                        backend):
    wire = "anthropic" if backend == "sqlite" else "openai"
    wire_model = f"crash-{backend}"
    path = _project(tmp_path, server, wire_model, wire=wire, latency_ms=200)
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'canary.db'}"
        child_store = None
    else:
        url = child_store = request.getfixturevalue("pg_url")
        monkeypatch.setenv("CANARY_STORE", url)
        assert run_cli(capsys, "db", "upgrade", "--config", str(path)).code == 0

    proc = _spawn(path, store_url=child_store)
    committed = _count(url)
    _wait_for(lambda: committed() >= 10, proc, "10 committed samples")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    with Store.open(url) as store:
        before = _snapshot(store)
        [crashed] = [store.get_run(run_id) for run_id in {v[3] for v in before.values()}]
    assert crashed is not None and 10 <= len(before) < SLOTS
    assert crashed.status in ("running", "interrupted")  # `interrupted` once a run marks abandoned ones

    server.reset()
    resumed = run_cli(capsys, "run", "--config", str(path), "--as-of", DAY, "--no-check", "--json")
    assert resumed.code == 0, resumed.err
    missing = SLOTS - len(before)
    assert json.loads(resumed.out)["planned"] == missing
    assert server.stats() == {wire_model: missing}  # nothing stored was asked again

    with Store.open(url) as store:
        after = _snapshot(store)
        new_run = store.last_run()
        assert {k: after[k] for k in before} == before  # ids, outcomes, finished_at, run_id untouched
        assert sorted(k[3] for k in after) == list(range(SLOTS))  # exactly one sample per slot
        assert new_run is not None and new_run.id != crashed.id
        assert (new_run.n_planned, new_run.n_done, new_run.status) == (missing, missing, "finished")
        assert {v[3] for k, v in after.items() if k not in before} == {new_run.id}

        # The crashed run is recognisably dead (its pid is gone): interrupted, with what it stored.
        store.mark_abandoned_runs()
        dead = store.get_run(crashed.id)
        assert dead is not None and dead.status == "interrupted" and dead.n_done == len(before)
        assert dead.finished_at is not None
        assert store.mark_abandoned_runs() == []
        assert store.get_run(new_run.id).status == "finished"  # type: ignore[union-attr]

