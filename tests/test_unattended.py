"""The issue's bar for running unattended: a scheduler job and two CLI runs started together
against PostgreSQL make exactly one sample per slot and one notification per alert."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from canary.config.models import SimBehaviour, SimFault
from canary.sim import SimScript, SimServer
from canary.store import Store
from canary.store import alerting as db
from tests.cli_helpers import config_with, remote_model, script_the_sim
from tests.projects import write_project

CANARIES = {
    f"c{i}.yaml": f"id: c{i}\nprompt: 'Question {i}?'\nscorers: [{{contains: 'A{i}'}}]\nsim: {{answer: 'A{i}'}}\n"
    for i in range(4)
}


def test_scheduler_and_two_runs_at_once_on_postgresql(tmp_path, pg_url, http_receiver):
    with Store.open(pg_url, migrate=True):
        pass
    with SimServer(SimScript(behaviours={})).start() as server:
        models = remote_model("good", "good", server, wire="openai") + remote_model("down", "down", server)
        config = config_with(models, samples=3, concurrency=2, attempts=1) + textwrap.dedent(f"""\
            alerts:
              log: false
              webhook: {{url: "{http_receiver.url("/hook")}"}}
            schedule: {{cron: "0 6 * * *", timezone: UTC}}
            """)
        path = write_project(tmp_path, config, CANARIES)
        script_the_sim(
            server,
            path,
            {
                "good": SimBehaviour(latency_ms=100),
                "down": SimBehaviour(latency_ms=20, faults=[SimFault(kind="status", status=503)]),
            },
        )
        env = {**os.environ, "CANARY_TEST_KEY": "k", "CANARY_STORE": pg_url}
        commands = [
            [sys.executable, "-m", "canary", "schedule", "--once", "--config", str(path)],
            [sys.executable, "-m", "canary", "run", "--wait", "-q", "--config", str(path)],
            [sys.executable, "-m", "canary", "run", "--wait", "-q", "--config", str(path)],
        ]
        procs = [
            subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for c in commands
        ]
        codes = [p.wait(timeout=180) for p in procs]
        errors = [p.stderr.read()[-500:] for p in procs]
        # Every process ends with a check; the `down` model's availability alert is firing.
        assert codes == [1, 1, 1], errors
        slots = 4 * 3
        assert server.stats() == {"good": slots, "down": slots * 2}  # each slot called once (+1 retry)
    with Store.open(pg_url) as store:
        keys = [s.key for s in store.samples()]
        alerts = db.list_alerts(store)
        outbox = db.outbox(store)
    assert len(keys) == len(set(keys)) == 2 * slots
    assert [(a.model_id, a.signal) for a in alerts] == [("down", "availability")]
    assert len(outbox) == 1 and outbox[0].status == "sent"
    hooks = [r for r in http_receiver.received() if r.path == "/hook"]
    assert len(hooks) == 1 and hooks[0].json()["events"][0]["signal"] == "availability"
