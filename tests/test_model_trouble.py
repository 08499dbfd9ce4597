"""Issue 8 part 8: one model's problem is that model's problem.

A missing key variable, a 401, a 404 model or an exhausted quota stops only that model: the
other models run, the check runs, the exit code says what was wrong (78 / 69), and a `config`
alert is notified through a real webhook receiver, shown by `check`, `alerts`, `status` and the
report, and resolved (with one resolved notification) once the model answers again. Everything
goes through the real CLI, the simulator over HTTP through the real SDKs, and a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import pytest

from canary.config.models import SimBehaviour, SimFault
from canary.sim import SimServer
from canary.store import Store
from tests.cli_helpers import config_with, remote_model, run_cli, script_the_sim
from tests.projects import write_project
from tests.receivers import HttpReceiver

KEY = "sk-canary-good-3b9e1f7d20"
OTHER_KEY = "sk-canary-other-8a4c6e0f51"

CANARIES = {
    f"c{i}.yaml": f"id: c{i}\nprompt: 'Question {i}?'\nscorers: [{{contains: 'A{i}'}}]\nsim: {{answer: 'A{i}'}}\n"
    for i in range(2)
}
SAMPLES = 2
SLOTS = SAMPLES * len(CANARIES)  # per model


def _project(
    tmp_path: Path,
    server: SimServer,
    receiver: HttpReceiver,
    models: str,
    behaviours: dict[str, SimBehaviour],
) -> Path:
    config = config_with(models, samples=SAMPLES, concurrency=1, attempts=2) + textwrap.dedent(f"""\
        alerts:
          log: false
          webhook: {{url: "{receiver.url("/hook")}"}}
        """)
    path = write_project(tmp_path, config, CANARIES)
    script_the_sim(server, path, behaviours)
    return path


def _rows(tmp_path: Path):
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        return store.samples()


def _events(receiver: HttpReceiver) -> list[list[tuple[str, str, str, str]]]:
    """What each webhook delivery said: (event, model, signal, summary) per event."""
    return [
        [(e["event"], e["model_id"], e["signal"], e["summary"]) for e in r.json()["events"]]
        for r in receiver.received()
    ]


def _json(capsys, *argv: str):
    result = run_cli(capsys, *argv)
    return result.code, json.loads(result.out)


def _config_alerts(capsys, path: Path, *, show_all: bool = False) -> list[dict]:
    code, rows = _json(capsys, "alerts", "--config", str(path), "--json", *(["--all"] if show_all else []))
    assert code == 0
    return [r for r in rows if r["signal"] == "config"]


# --------------------------------------------------------------------------- (a) a missing key variable


def test_missing_key_stops_only_its_model_and_alerts_until_the_variable_is_set(
    tmp_path, capsys, server, monkeypatch, http_receiver
):
    monkeypatch.setenv("CANARY_TEST_KEY", KEY)
    monkeypatch.delenv("CANARY_OPUS_KEY", raising=False)
    models = remote_model("good", "good-1", server) + remote_model(
        "opus-4.8", "opus-1", server, wire="openai", key_env="CANARY_OPUS_KEY"
    )
    path = _project(
        tmp_path, server, http_receiver, models, {"good-1": SimBehaviour(), "opus-1": SimBehaviour()}
    )
    cfg = str(path)

    first = run_cli(capsys, "run", "--config", cfg)
    assert first.code == 78, first.err
    assert server.stats() == {"good-1": SLOTS}  # the model without its key is never called
    rows = _rows(tmp_path)
    assert len(rows) == SLOTS and {(r.model_id, r.outcome) for r in rows} == {("good", "pass")}
    assert (
        f"model opus-4.8: environment variable CANARY_OPUS_KEY is not set ({SLOTS} samples skipped)"
        in first.err
    )
    assert "Traceback" not in first.err
    summary = "opus-4.8 cannot be monitored: environment variable CANARY_OPUS_KEY is not set"
    assert _events(http_receiver) == [[("firing", "opus-4.8", "config", summary)]]

    # check, alerts, status and the report all show it; a second check does not notify again.
    checked = run_cli(capsys, "check", "--config", cfg, "--json")
    assert checked.code == 1
    firing = json.loads(checked.out)["firing"]
    assert [(a["model_id"], a["signal"], a["summary"]) for a in firing] == [("opus-4.8", "config", summary)]
    plain = run_cli(capsys, "check", "--config", cfg)
    assert plain.code == 1 and summary in plain.out
    [alert] = _config_alerts(capsys, path)
    assert (alert["model_id"], alert["state"], alert["summary"], alert["notify_count"]) == (
        "opus-4.8",
        "firing",
        summary,
        1,
    )
    code, status = _json(capsys, "status", "--config", cfg, "--json")
    assert code == 0 and status["alerts_firing"] == 1
    assert [(a["model"], a["signal"], a["summary"]) for a in status["alerts"]] == [
        ("opus-4.8", "config", summary)
    ]
    assert [(u["model"], u["state"], u["skipped"]) for u in status["unmonitored"]] == [
        ("opus-4.8", "setup", SLOTS)
    ]
    shown = run_cli(capsys, "status", "--config", cfg)
    assert "opus-4.8 setup" in shown.out and "CANARY_OPUS_KEY is not set" in shown.out
    assert run_cli(capsys, "report", "--config", cfg, "--out", str(tmp_path / "site")).code == 0
    assert summary in (tmp_path / "site" / "alerts.html").read_text(encoding="utf-8")
    assert len(http_receiver.received()) == 1

    # Set the variable: the next run calls only the missing model, and the alert resolves once.
    monkeypatch.setenv("CANARY_OPUS_KEY", OTHER_KEY)
    second = run_cli(capsys, "run", "--config", cfg)
    assert second.code == 0, second.err
    assert server.stats() == {"good-1": SLOTS, "opus-1": SLOTS}
    assert len(_rows(tmp_path)) == 2 * SLOTS
    deliveries = _events(http_receiver)
    assert len(deliveries) == 2
    assert [(e, m, s) for e, m, s, _ in deliveries[1]] == [("resolved", "opus-4.8", "config")]
    assert not _config_alerts(capsys, path)
    [resolved] = _config_alerts(capsys, path, show_all=True)
    assert resolved["state"] == "resolved" and resolved["id"] == alert["id"]
    code, status = _json(capsys, "status", "--config", cfg, "--json")
    assert status["alerts_firing"] == 0 and status["unmonitored"] == []

    assert "nothing to run" in run_cli(capsys, "run", "--config", cfg).out
    assert run_cli(capsys, "check", "--config", cfg).code == 0
    assert len(http_receiver.received()) == 2  # resolved is notified once, never again


def test_every_model_without_its_key_still_records_and_alerts(
    tmp_path, capsys, server, monkeypatch, http_receiver
):
    """Nothing can run at all: no run row (the dead man's switch must not think a run completed),
    but the alert fires and the exit code says why."""
    monkeypatch.delenv("CANARY_TEST_KEY", raising=False)
    path = _project(
        tmp_path,
        server,
        http_receiver,
        remote_model("lonely", "lonely-1", server),
        {"lonely-1": SimBehaviour()},
    )
    result = run_cli(capsys, "run", "--config", str(path))
    assert result.code == 78
    assert "nothing to run" not in result.out
    assert server.stats() == {}
    assert _rows(tmp_path) == []
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        assert store.last_run() is None
    [[event]] = _events(http_receiver)
    assert event[:3] == ("firing", "lonely", "config") and "CANARY_TEST_KEY is not set" in event[3]
    again = run_cli(capsys, "run", "--config", str(path), "--json")
    assert again.code == 78
    assert json.loads(again.out)["trouble"] == {
        "lonely": {
            "message": "environment variable CANARY_TEST_KEY is not set",
            "state": "setup",
            "skipped": SLOTS,
        }
    }
    assert len(http_receiver.received()) == 1  # still firing: not notified again


def test_validate_still_names_every_missing_key_variable(
    tmp_path, capsys, server, monkeypatch, http_receiver
):
    monkeypatch.delenv("CANARY_TEST_KEY", raising=False)
    monkeypatch.delenv("CANARY_OPUS_KEY", raising=False)
    models = remote_model("a", "a-1", server) + remote_model(
        "b", "b-1", server, wire="openai", key_env="CANARY_OPUS_KEY"
    )
    path = _project(tmp_path, server, http_receiver, models, {})
    result = run_cli(capsys, "validate", "--config", str(path))
    assert result.code == 78
    assert len(result.err.strip().splitlines()) == 1
    assert "CANARY_TEST_KEY is not set" in result.err and "also CANARY_OPUS_KEY (model `b`)" in result.err


# --------------------------------------------------------------------------- (b) 401, (c) 404 and quota


@pytest.mark.parametrize(
    ("wire_model", "fault", "expected"),
    [
        ("m401", SimFault(kind="status", status=401), "HTTP 401"),
        ("m403", SimFault(kind="status", status=403), "HTTP 403"),
        ("no-such-model", None, "HTTP 404"),  # a model name the service does not know
        ("mquota", SimFault(kind="quota"), "quota"),
    ],
)
def test_a_refused_model_stops_only_itself(
    tmp_path, capsys, server, monkeypatch, http_receiver, wire_model, fault, expected
):
    monkeypatch.setenv("CANARY_TEST_KEY", KEY)
    behaviours = {"good-1": SimBehaviour()}
    if fault is not None:
        behaviours[wire_model] = SimBehaviour(faults=[fault])
    models = remote_model("good", "good-1", server) + remote_model("gpt-5", wire_model, server, wire="openai")
    path = _project(tmp_path, server, http_receiver, models, behaviours)

    result = run_cli(capsys, "run", "--config", str(path))
    assert result.code == 69, result.err
    assert server.stats() == {"good-1": SLOTS, wire_model: 1}  # one request, the model's other slots skipped
    rows = _rows(tmp_path)
    assert sorted((r.model_id, r.outcome) for r in rows) == [("good", "pass")] * SLOTS + [("gpt-5", "error")]
    assert f"({SLOTS - 1} samples skipped)" in result.err
    [[(event, model, signal, summary)]] = _events(http_receiver)
    assert (event, model, signal) == ("firing", "gpt-5", "config")
    assert summary.startswith("gpt-5 cannot be monitored: ") and expected in summary
    checked = run_cli(capsys, "check", "--config", str(path), "--json")
    assert checked.code == 1
    assert [a["summary"] for a in json.loads(checked.out)["firing"]] == [summary]
    code, status = _json(capsys, "status", "--config", str(path), "--json")
    assert [(u["model"], u["state"]) for u in status["unmonitored"]] == [("gpt-5", "rejected")]
    assert len(http_receiver.received()) == 1


def test_a_refused_model_resolves_when_the_service_accepts_it_again(
    tmp_path, capsys, server, monkeypatch, http_receiver
):
    monkeypatch.setenv("CANARY_TEST_KEY", KEY)
    models = remote_model("good", "good-1", server) + remote_model("gpt-5", "m401", server, wire="openai")
    path = _project(
        tmp_path,
        server,
        http_receiver,
        models,
        {
            "good-1": SimBehaviour(),
            "m401": SimBehaviour(faults=[SimFault(kind="status", status=401)]),
        },
    )
    assert run_cli(capsys, "run", "--config", str(path)).code == 69
    script_the_sim(server, path, {"good-1": SimBehaviour(), "m401": SimBehaviour()})  # the key was fixed
    again = run_cli(capsys, "run", "--config", str(path))
    assert again.code == 0, again.err
    assert server.stats() == {"m401": SLOTS}  # the error slot and the skipped ones, nothing of `good`
    assert sorted({(r.model_id, r.outcome) for r in _rows(tmp_path)}) == [("good", "pass"), ("gpt-5", "pass")]
    deliveries = _events(http_receiver)
    assert [[(e, m, s) for e, m, s, _ in d] for d in deliveries] == [
        [("firing", "gpt-5", "config")],
        [("resolved", "gpt-5", "config")],
    ]


# --------------------------------------------------------------------------- secrets


GATEWAY_KEY = "gateway-token-q8w7e6r5t4"  # not shaped like a vendor key: only knowing it redacts it
MASKED = "sk-canar****************7d20"


def test_config_alert_never_carries_a_key(tmp_path, capsys, server, monkeypatch, http_receiver):
    """A gateway answers 401 quoting the key it was sent in full and a masked vendor key, another
    model's key is set and a third model's variable is unset: no key, whole or masked, may reach
    the alert, its notification, any command's output, the report or the database."""
    monkeypatch.setenv("CANARY_TEST_KEY", KEY)
    monkeypatch.setenv("CANARY_GATEWAY_KEY", GATEWAY_KEY)
    monkeypatch.delenv("CANARY_UNSET_KEY", raising=False)
    refusal = {
        "error": {
            "message": f"Incorrect API key provided: {GATEWAY_KEY} (looks like {MASKED}).",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    with HttpReceiver() as gateway:
        gateway.script((401, json.dumps(refusal).encode()))
        models = textwrap.dedent(f"""\
            - id: gpt-5
              provider: openai_compatible
              model: gpt-5
              base_url: {gateway.url("/v1")}
              api_key_env: CANARY_GATEWAY_KEY
            """)
        models += remote_model("opus-4.8", "opus-1", server) + remote_model(
            "nokey", "nokey-1", server, key_env="CANARY_UNSET_KEY"
        )
        path = _project(tmp_path, server, http_receiver, models, {"opus-1": SimBehaviour()})
        cfg = str(path)
        outputs = [run_cli(capsys, "run", "--config", cfg)]
        assert outputs[0].code == 78
        assert len(gateway.received()) == 1
        assert gateway.received()[0].headers["authorization"] == f"Bearer {GATEWAY_KEY}"  # it was really sent
    for argv in (
        ("check", "--json"),
        ("check",),
        ("alerts", "--json"),
        ("alerts", "--all"),
        ("status", "--json"),
        ("status",),
        ("results", "--json"),
    ):
        outputs.append(run_cli(capsys, argv[0], "--config", cfg, *argv[1:]))
    assert run_cli(capsys, "report", "--config", cfg, "--out", str(tmp_path / "site")).code == 0
    text = "".join(o.out + o.err for o in outputs)
    text += "".join(r.body.decode("utf-8") for r in http_receiver.received())
    text += "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "site").rglob("*.html"))
    with sqlite3.connect(tmp_path / "canary.db") as conn:
        text += "\n".join(conn.iterdump())
    # The sweep looks at the right things: both alerts, the gateway's words, the variable's name.
    assert "gpt-5 cannot be monitored: HTTP 401" in text and "Incorrect API key provided" in text
    assert "nokey cannot be monitored: environment variable CANARY_UNSET_KEY is not set" in text
    for secret in (KEY, GATEWAY_KEY, MASKED, "q8w7e6r5"):
        assert secret not in text


def test_scheduled_job_runs_the_other_models_and_exits_78(
    tmp_path, capsys, server, monkeypatch, http_receiver
):
    """`canary schedule --once` (the systemd oneshot) behaves as `canary run`: not a job failure."""
    monkeypatch.setenv("CANARY_TEST_KEY", KEY)
    monkeypatch.delenv("CANARY_OPUS_KEY", raising=False)
    models = remote_model("good", "good-1", server) + remote_model(
        "opus-4.8", "opus-1", server, key_env="CANARY_OPUS_KEY"
    )
    path = _project(
        tmp_path, server, http_receiver, models, {"good-1": SimBehaviour(), "opus-1": SimBehaviour()}
    )
    with path.open("a", encoding="utf-8") as f:
        f.write('schedule: {cron: "0 6 * * *", timezone: UTC}\n')
    result = run_cli(capsys, "schedule", "--once", "--config", str(path))
    assert result.code == 78
    assert server.stats() == {"good-1": SLOTS}
    assert len(_rows(tmp_path)) == SLOTS
    logged = [json.loads(line) for line in (result.out + result.err).splitlines() if line.startswith("{")]
    assert any(e.get("event") == "model_trouble" and e.get("model") == "opus-4.8" for e in logged), logged
    [[event]] = _events(http_receiver)
    assert event[:3] == ("firing", "opus-4.8", "config")


def test_newest_status_per_model_on_both_dialects(store_url):
    """The `config` signal reads each model's newest day up to the day judged, and on that day the
    last row written: a later backfill of an older day never hides what a newer day found."""
    from datetime import UTC, date, datetime, timedelta

    from canary.store.modelstatus import ModelStatus, latest, record

    d1, d2 = date(2026, 3, 1), date(2026, 3, 2)
    t0 = datetime(2026, 3, 2, 6, tzinfo=UTC)
    with Store.open(store_url, migrate=True) as store:
        assert latest(store, ["a", "b"], up_to=d2) == {}
        record(
            store,
            [ModelStatus("a", "setup", "environment variable K is not set", 4)],
            day=d1,
            run_id=None,
            at=t0,
        )
        record(
            store,
            [ModelStatus("a", "rejected", "HTTP 401", 3), ModelStatus("b", "ok")],
            day=d2,
            run_id=None,
            at=t0 + timedelta(hours=1),
        )
        record(store, [ModelStatus("a", "ok")], day=d2, run_id=None, at=t0 + timedelta(hours=2))
        record(
            store, [ModelStatus("a", "setup", "backfill", 1)], day=d1, run_id=None, at=t0 + timedelta(hours=3)
        )
        now = latest(store, ["a", "b", "c"], up_to=d2)
        assert {m: (r.state, r.day) for m, r in now.items()} == {"a": ("ok", d2), "b": ("ok", d2)}
        then = latest(store, ["a", "b"], up_to=d1)
        assert {m: (r.state, r.reason, r.skipped) for m, r in then.items()} == {"a": ("setup", "backfill", 1)}
        with pytest.raises(ValueError, match="model state must be one of"):
            record(store, [ModelStatus("a", "broken")], day=d2, run_id=None, at=t0)


def test_some_refused_requests_make_a_partly_monitored_alert(
    tmp_path, capsys, server, monkeypatch, http_receiver
):
    """A 400 on one request is not the whole model: the other slots run, and the alert says the
    model is only partly monitored until a run gets every answer."""
    monkeypatch.setenv("CANARY_TEST_KEY", KEY)
    behaviours = {"m400": SimBehaviour(faults=[SimFault(kind="status", status=400, times=1)])}
    path = _project(tmp_path, server, http_receiver, remote_model("gpt-5", "m400", server), behaviours)
    assert run_cli(capsys, "run", "--config", str(path)).code == 69
    assert server.stats() == {"m400": SLOTS}
    assert sorted(r.outcome for r in _rows(tmp_path)) == ["error"] + ["pass"] * (SLOTS - 1)
    [[(event, model, signal, summary)]] = _events(http_receiver)
    assert (event, model, signal) == ("firing", "gpt-5", "config")
    assert summary.startswith("gpt-5 is only partly monitored: HTTP 400")
    assert run_cli(capsys, "run", "--config", str(path)).code == 0  # the error slot is run again
    assert server.stats() == {"m400": SLOTS + 1}
    assert [[e for e, *_ in d] for d in _events(http_receiver)] == [["firing"], ["resolved"]]
