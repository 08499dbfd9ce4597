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
from canary.sim import SimServer
from canary.store import Store
from tests.cli_helpers import config_with, remote_model, run_cli, script_the_sim
from tests.projects import write_project

KEY = "sk-canary-fault-7c3e91d0b2"
DAY = "2026-05-04"
REPO = Path(__file__).resolve().parent.parent
SLOTS = 60


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CANARY_TEST_KEY", KEY)
    return KEY


def _project(
    tmp_path: Path,
    server: SimServer,
    wire_model: str,
    *,
    wire: str = "anthropic",
    latency_ms: int = 0,
    samples: int = SLOTS,
    concurrency: int = 4,
) -> Path:
    path = write_project(
        tmp_path,
        config_with(
            remote_model("m", wire_model, server, wire=wire), samples=samples, concurrency=concurrency
        ),
    )
    script_the_sim(server, path, {wire_model: SimBehaviour(latency_ms=latency_ms)})
    return path


def _spawn(path: Path, *args: str, store_url: str | None = None) -> subprocess.Popen[str]:
    """`python -m canary run` in its own process, as cron would start it."""
    env = {**os.environ, "CANARY_TEST_KEY": KEY, "PYTHONPATH": str(REPO)}
    if store_url is not None:
        env["CANARY_STORE"] = store_url
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "canary",
            "run",
            "--config",
            str(path),
            "--as-of",
            DAY,
            "--quiet",
            "--no-check",
            *args,
        ],
        cwd=path.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(
    condition: Callable[[], bool], proc: subprocess.Popen[str], what: str, limit_s: float = 60
) -> None:
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


def _snapshot(store: Store) -> dict[tuple[object, ...], tuple[int, str, object, str]]:
    return {
        (r.day, *r.key): (r.id, r.outcome, r.finished_at, r.run_id) for r in store.samples(with_turns=False)
    }


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text and KEY not in text
    return lines[0]


# --------------------------------------------------------------------------- kill -9, then resume


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_killed_run_resumes_with_only_the_missing_slots(
    request, tmp_path, capsys, monkeypatch, server, key, backend
):
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

    script_the_sim(server, path, {wire_model: SimBehaviour()})  # no latency now: the count is what matters
    resumed = run_cli(capsys, "run", "--config", str(path), "--as-of", DAY, "--no-check", "--json")
    assert resumed.code == 0, resumed.err
    missing = SLOTS - len(before)
    assert json.loads(resumed.out)["planned"] == missing
    assert server.stats() == {wire_model: missing}  # nothing stored was asked again

    with Store.open(url) as store:
        after = _snapshot(store)
        new_run = store.last_run()
        assert {k: after[k] for k in before} == before  # ids, outcomes, finished_at, run_id untouched
        assert sorted(k[4] for k in after) == list(range(SLOTS))  # exactly one sample per slot
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


# --------------------------------------------------------------------------- SQLite locked by another process


def test_sqlite_locked_for_the_whole_run_exits_74_with_one_line(tmp_path, capsys, server, key):
    path = _project(tmp_path, server, "locked", samples=3)
    assert run_cli(capsys, "run", "--config", str(path), "--as-of", "2026-05-01", "--no-check").code == 0
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        before = _snapshot(store)
    assert len(before) == 3

    server.reset()
    blocker = sqlite3.connect(tmp_path / "canary.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        result = run_cli(capsys, "run", "--config", str(path), "--as-of", DAY, "--no-check", "--quiet")
        waited = time.monotonic() - started
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert result.code == 74
    line = _one_line(result.err)
    assert line.startswith("canary: error: database is locked by another process")
    assert str(tmp_path / "canary.db") in line and "run again" in line
    assert server.stats() == {}  # it failed before asking any model
    print(f"locked run gave up after {waited:.1f} s")  # the 5 s busy timeout, reported, not asserted

    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        assert _snapshot(store) == before
    again = run_cli(capsys, "run", "--config", str(path), "--as-of", DAY, "--no-check", "--json")
    assert again.code == 0 and json.loads(again.out)["planned"] == 3


# --------------------------------------------------------------------------- SQLite full


@pytest.fixture
def page_cap(tmp_path: Path) -> Iterator[dict[str, int]]:
    """While cap["pages"] is set, every new SQLite connection to tmp_path/canary.db gets
    PRAGMA max_page_count = cap (a per-connection setting, so it must be applied on connect)."""
    cap: dict[str, int] = {}
    db = str(tmp_path / "canary.db")

    def limit(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        if "pages" in cap and isinstance(dbapi_conn, sqlite3.Connection):
            files = [row[2] for row in dbapi_conn.execute("PRAGMA database_list")]
            if db in files:
                dbapi_conn.execute(f"PRAGMA max_page_count = {cap['pages']}")

    sa.event.listen(sa.pool.Pool, "connect", limit)
    try:
        yield cap
    finally:
        sa.event.remove(sa.pool.Pool, "connect", limit)


def test_sqlite_full_mid_run_exits_74_keeps_everything_and_a_later_run_fills_in(
    tmp_path, capsys, server, key, page_cap
):
    path = _project(tmp_path, server, "full", samples=40)
    url = f"sqlite:///{tmp_path / 'canary.db'}"
    for day in ("2026-05-01", "2026-05-02"):
        assert run_cli(capsys, "run", "--config", str(path), "--as-of", day, "--samples", "5").code in (0, 1)
    with Store.open(url) as store:
        before = _snapshot(store)
        [pages] = [store.engine.connect().exec_driver_sql("PRAGMA page_count").scalar_one()]
    assert len(before) == 10

    page_cap["pages"] = pages + 2
    server.reset()
    result = run_cli(capsys, "run", "--config", str(path), "--as-of", DAY, "--no-check", "--quiet")
    assert result.code == 74
    line = _one_line(result.err)
    assert line.startswith("canary: error: database or disk is full: nothing already committed was lost")
    assert "run again" in line
    del page_cap["pages"]

    with Store.open(url) as store:
        after = _snapshot(store)
        assert {k: after[k] for k in before} == before
        today = store.samples(day=date.fromisoformat(DAY))
        assert 0 < len(today) < 40, len(today)  # it filled up mid-run
        assert all(r.turns and r.outcome == "pass" for r in today)  # readable, whole
        run = store.get_run(today[0].run_id)
        assert run is not None and run.status in ("failed", "running") and run.n_planned == 40
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
    stored_today = len(today)
    assert run_cli(capsys, "check", "--config", str(path), "--as-of", DAY).code in (0, 1)  # alerts still work

    server.reset()
    again = run_cli(capsys, "run", "--config", str(path), "--as-of", DAY, "--no-check", "--json")
    assert again.code == 0, again.err
    assert json.loads(again.out)["planned"] == 40 - stored_today
    assert server.stats() == {"full": 40 - stored_today}
    with Store.open(url) as store:
        assert sorted(r.sample_index for r in store.samples(day=date.fromisoformat(DAY))) == list(range(40))


# --------------------------------------------------------------------------- PostgreSQL connection lost


def test_postgres_connection_terminated_mid_run_reconnects_and_completes(
    tmp_path, capsys, server, key, pg_url
):
    app = f"canary-fault-{uuid.uuid4().hex[:8]}"
    url = f"{pg_url}&application_name={app}"
    path = _project(tmp_path, server, "pgdrop", wire="openai", latency_ms=100, samples=40)
    with Store.open(pg_url, migrate=True):
        pass
    admin = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    terminate = sa.text(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = :app"
    )

    proc = _spawn(path, store_url=url)
    committed = _count(pg_url)
    killed = 0
    for threshold in (5, 15):
        _wait_for(lambda t=threshold: committed() >= t, proc, f"{threshold} committed samples")
        with admin.connect() as conn:
            killed += int(conn.execute(terminate, {"app": app}).scalar_one())
    _, err = proc.communicate(timeout=60)
    assert killed >= 2  # it really lost connections, twice
    assert proc.returncode == 0, err
    assert "Traceback" not in err and KEY not in err

    with Store.open(pg_url) as store:
        rows = store.samples(with_turns=False)
        run = store.last_run()
    assert sorted(r.sample_index for r in rows) == list(range(40)) and {r.outcome for r in rows} == {"pass"}
    assert run is not None and (run.status, run.n_done) == ("finished", 40)
    assert server.stats() == {"pgdrop": 40}  # a reconnect re-sends nothing to the model
    admin.dispose()
