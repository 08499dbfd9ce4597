"""Exactly once under concurrency: the run lock, --wait, exit 75, and --shard, on SQLite and
PostgreSQL, with real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from canary.config.load import load_project
from canary.config.models import SimBehaviour
from canary.plan import Shard, select
from canary.sim import SimScript, SimServer
from canary.store import Store
from canary.store.runlock import RunLock, RunLocked
from tests.cli_helpers import config_with, remote_model, run_cli, script_the_sim
from tests.projects import SIM_CONFIG, write_project

CANARIES = {
    f"c{i}.yaml": f"id: c{i}\nprompt: 'Question {i}?'\nscorers: [{{contains: 'A{i}'}}]\nsim: {{answer: 'A{i}'}}\n"
    for i in range(6)
}


def migrated(url: str) -> str:
    """PostgreSQL is upgraded deliberately (`canary db upgrade`); do it as a user would first."""
    with Store.open(url, migrate=True):
        pass
    return url


def test_second_run_exits_75_while_the_first_holds_the_lock(tmp_path, capsys, store_url, monkeypatch):
    path = write_project(tmp_path, SIM_CONFIG)
    monkeypatch.setenv("CANARY_STORE", store_url)
    project = load_project(path)
    with Store.open(project.store_url, base_dir=project.root, migrate=True) as store, RunLock(store):
        result = run_cli(capsys, "run", "--config", str(path))
        assert result.code == 75
        assert "another canary run is in progress" in result.err and "--wait" in result.err
        assert len(result.err.strip().splitlines()) == 1
        with pytest.raises(RunLocked), RunLock(store):
            pass
        assert store.samples() == []
    assert run_cli(capsys, "run", "--config", str(path)).code == 0  # released: runs now


def test_wait_blocks_until_the_lock_is_released(tmp_path, capsys, store_url, monkeypatch):
    path = write_project(tmp_path, SIM_CONFIG)
    monkeypatch.setenv("CANARY_STORE", store_url)
    project = load_project(path)
    store = Store.open(project.store_url, base_dir=project.root, migrate=True)
    lock = RunLock(store).__enter__()
    release = threading.Timer(0.5, lambda: lock.__exit__(None, None, None))
    release.start()
    try:
        result = run_cli(capsys, "run", "--config", str(path), "--wait")
        assert result.code == 0, result.err
        assert not release.is_alive()  # it could only have finished after the release
    finally:
        release.join()
        store.close()


def test_shards_split_the_pairs_deterministically(tmp_path):
    project = load_project(write_project(tmp_path, SIM_CONFIG, CANARIES))
    selection = select(project)
    pairs = {(m.config.id, c.id) for m in selection.models for c in selection.canaries}
    shares = [{p for p in pairs if Shard(i, 3).owns(*p)} for i in (1, 2, 3)]
    assert set().union(*shares) == pairs
    assert sum(len(s) for s in shares) == len(pairs)  # disjoint
    assert shares == [{p for p in pairs if Shard(i, 3).owns(*p)} for i in (1, 2, 3)]  # stable
    for bad in ("0/2", "3/2", "x", "1/0"):
        with pytest.raises(Exception, match="--shard"):
            Shard.parse(bad)


def test_sharded_runs_on_one_store_fill_every_slot_once(tmp_path, capsys, store_url, monkeypatch):
    path = write_project(tmp_path, SIM_CONFIG, CANARIES)
    monkeypatch.setenv("CANARY_STORE", migrated(store_url))
    planned = []
    for shard in ("1/2", "2/2"):
        result = run_cli(
            capsys,
            "run",
            "--config",
            str(path),
            "--shard",
            shard,
            "--as-of",
            "2026-07-01",
            "--json",
            "--no-check",
        )
        assert result.code == 0, result.err
        planned.append(json.loads(result.out)["planned"])
    with Store.open(store_url) as store:
        keys = [s.key for s in store.samples()]
    assert len(keys) == len(set(keys)) == 2 * 6 == sum(planned)
    again = run_cli(capsys, "run", "--config", str(path), "--as-of", "2026-07-01", "--json", "--no-check")
    assert json.loads(again.out)["planned"] == 0


def _spawn(path: Path, *extra: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "canary", "run", "--config", str(path), "--as-of", "2026-07-02", "-q", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize("wait", [True, False])
def test_two_processes_at_once_make_one_sample_per_slot(tmp_path, store_url, wait):
    with SimServer(SimScript(behaviours={})).start() as server:
        models = remote_model("m", "slow", server, wire="openai")
        path = write_project(tmp_path, config_with(models, samples=3, concurrency=2), CANARIES)
        script_the_sim(server, path, {"slow": SimBehaviour(latency_ms=150)})
        env = {**os.environ, "CANARY_TEST_KEY": "k", "CANARY_STORE": migrated(store_url)}
        extra = ("--wait",) if wait else ()
        procs = [_spawn(path, *extra, "--no-check", env=env) for _ in range(2)]
        codes = sorted(p.wait(timeout=120) for p in procs)
        errors = [p.stderr.read() for p in procs]
        assert codes == ([0, 0] if wait else [0, 75]), errors
        assert server.stats() == {"slow": 6 * 3}  # every slot called once, by whichever run got it
    with Store.open(store_url) as store:
        keys = [s.key for s in store.samples()]
    assert len(keys) == len(set(keys)) == 18
