"""`canary check` end to end: simulated days through the real CLI, the simulator over HTTP,
a real SQLite file, a real SMTP server (STARTTLS, verified) and a real HTTP receiver for
Slack and webhooks."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from canary.store import Store
from canary.store import alerting as db
from tests.cli_helpers import run_cli
from tests.projects import write_project
from tests.receivers import HttpReceiver, SmtpReceiver

START = date(2026, 3, 1)
SLACK_SECRET_PATH = "/services/T000/B000/slack-secret-token-8c1f"
SMTP_PASSWORD = "smtp-secret-pw-51a9"
HOOK_SECRET = "hmac-secret-77e2"

CANARIES = {
    f"c{i}.yaml": textwrap.dedent(f"""\
        id: q{i}
        prompt: "Question {i}: what is {i} + {i}?"
        scorers:
          - contains: "{2 * i}"
        sim:
          answer: "It is {2 * i}."
          wrong: "It is {2 * i + 1}."
        """)
    for i in range(1, 4)
}


def day(n: int) -> str:
    return (START + timedelta(days=n)).isoformat()


def config(
    sim: str,
    *,
    samples: int = 10,
    alerts: str = "",
    repeat_hours: float = 1000,
    extra_models: str = "",
    latency_min_delta_s: float = 3600,
    signals: str = "",
) -> str:
    """A one-model project. Latency here is the wall time of loopback calls, which host load
    alone can stretch by seconds, so the latency signal's minimum change is out of reach unless
    a test asks for it (test_latency_alert_fires_on_a_scripted_slowdown scripts its slowdown)."""
    return textwrap.dedent("""\
        store: sqlite:///canary.db
        signals: {{latency_p95_min_delta_s: {latency_min_delta_s}{signals}}}
        defaults:
          samples: {samples}
          concurrency: 16
          timeout_s: 60
          stream: false
          retry: {{attempts: 0, backoff_s: [0.001]}}
        models:
          - id: drifty
            provider: sim
            protocol: openai
            model: drifty-1
            price: {{input_per_mtok: 1, output_per_mtok: 2}}
            sim: {sim}
        {extra_models}alerts:
          repeat_hours: {repeat_hours}
          log: false
          report_url: https://canary.example.com/report/
        {alerts}""").format(
        samples=samples,
        sim=sim,
        repeat_hours=repeat_hours,
        alerts=alerts,
        extra_models=extra_models,
        latency_min_delta_s=latency_min_delta_s,
        signals=f", {signals}" if signals else "",
    )


@pytest.fixture
def project(tmp_path, monkeypatch):
    def make(text: str) -> Path:
        path = write_project(tmp_path, text, CANARIES)
        monkeypatch.chdir(tmp_path)
        return path

    return make


def run_day(capsys, n: int, *extra: str) -> int:
    result = run_cli(capsys, "run", "--as-of", day(n), "--no-check", "-q", *extra)
    assert result.code in (0, 69), result.err
    return result.code


def check_day(capsys, n: int):
    return run_cli(capsys, "check", "--as-of", day(n), "--json")


def alerts_of(tmp_path: Path, signal: str, scope: str = "*"):
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        return [
            a for a in db.list_alerts(store, include_resolved=True) if a.signal == signal and a.scope == scope
        ]


def test_silent_regression_pages_email_and_slack_once_then_resolves(
    tmp_path, capsys, project, monkeypatch, smtp_starttls: SmtpReceiver, http_receiver: HttpReceiver, test_ca
):
    drop, recover = 28, 34  # the default rule judges a series from four weeks of history on
    monkeypatch.setenv("SLACK_WEBHOOK_URL", http_receiver.url(SLACK_SECRET_PATH))
    monkeypatch.setenv("CANARY_SMTP_USER", "canary")
    monkeypatch.setenv("CANARY_SMTP_PASSWORD", SMTP_PASSWORD)
    alerts = textwrap.dedent(f"""\
          email:
            host: 127.0.0.1
            port: {smtp_starttls.port}
            security: starttls
            ca_file: {test_ca.ca_file}
            from: canary@example.com
            to: [oncall@example.com]
          slack: {{webhook_url_env: SLACK_WEBHOOK_URL}}
        """)
    alerts = textwrap.indent(alerts, "  ")
    sim = (
        f"{{quality: 0.97, seed: 3, periods: [{{from: {day(drop)}, to: {day(recover - 1)}, quality: 0.6}}]}}"
    )
    project(config(sim, alerts=alerts))
    first_alarm = None
    for n in range(recover + 4):
        run_day(capsys, n)
        result = check_day(capsys, n)
        out = json.loads(result.out)
        fired = [e for e in out["events"] if e["signal"] == "quality" and e["scope"] == "all canaries"]
        if n < drop:
            assert result.code == 0, (n, out)
        if fired and fired[0]["event"] == "firing":
            first_alarm = n
        if first_alarm is not None and n < recover:
            assert result.code == 1
    assert first_alarm is not None and drop <= first_alarm <= drop + 2  # a 37-point drop: <= 2 days
    [episode] = alerts_of(tmp_path, "quality")
    assert episode.state == "resolved" and episode.notify_count == 1
    assert recover <= (episode.resolved_day - START).days <= recover + 3

    mails = smtp_starttls.received()
    hooks = [r for r in http_receiver.received() if r.path == SLACK_SECRET_PATH]
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        outbox = db.outbox(store)
    messages = {row.message_id for row in outbox}
    assert all(row.status == "sent" for row in outbox)
    assert len(mails) == len(hooks) == len(messages) >= 2  # the firing message and the resolved one
    assert all(m.tls for m in mails)
    subjects = [m.message["Subject"] for m in mails]
    assert sum("firing" in s for s in subjects) >= 1 and any("resolved" in s for s in subjects)
    slack_text = json.dumps([h.json() for h in hooks])
    assert "drifty" in slack_text and "https://canary.example.com/report/" in slack_text
    assert len({m.message["Message-ID"] for m in mails}) == len(mails)  # nothing sent twice


def make_due(tmp_path: Path) -> None:
    """Time passing for the outbox: every queued notification's backoff is over."""
    with sqlite3.connect(tmp_path / "canary.db") as conn:
        conn.execute("UPDATE notifications SET next_attempt_at = NULL WHERE status = 'queued'")


def test_smtp_down_then_up_delivers_once_later(tmp_path, capsys, project, test_ca):
    receiver = SmtpReceiver()
    receiver.start()
    port = receiver.port
    receiver.stop()  # the mail server is down for the first check
    alerts = textwrap.indent(
        textwrap.dedent(f"""\
          delivery_attempts: 1
          email: {{host: 127.0.0.1, port: {port}, security: none, to: [oncall@example.com]}}
        """),
        "  ",
    )
    project(config("{quality: 1.0}", samples=2, alerts=alerts, signals="max_age_hours: 1"))
    run_day(capsys, 0)
    result = check_day(capsys, 5)  # five days later: the dead man's switch fires
    out = json.loads(result.out)
    assert result.code == 1 and out["delivery"]["failed"] and not out["delivery"]["sent"]
    assert [a.state for a in alerts_of(tmp_path, "stale")] == ["firing"]  # the alert is kept
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        assert len(db.queued(store)) == 1
    up = SmtpReceiver(port=port)
    up.start()
    try:
        early = json.loads(check_day(capsys, 5).out)  # backing off: not due yet, so not tried
        assert early["delivery"]["sent"] == [] and early["delivery"]["deferred"] == 1 and up.received() == []
        make_due(tmp_path)
        again = json.loads(check_day(capsys, 5).out)
        assert len(again["delivery"]["sent"]) == 1 and again["events"] == []
        third = json.loads(check_day(capsys, 5).out)
        assert third["delivery"]["sent"] == []
        assert (
            len(up.received()) == 1
            and "no completed canary run" in up.received()[0].message.get_body(("plain",)).get_content()
        )
    finally:
        up.stop()


def test_slack_500_then_200_is_retried_and_webhook_is_signed(
    tmp_path, capsys, project, monkeypatch, http_receiver: HttpReceiver
):
    import hashlib
    import hmac

    monkeypatch.setenv("SLACK_WEBHOOK_URL", http_receiver.url("/slack"))
    monkeypatch.setenv("HOOK_SECRET", HOOK_SECRET)
    alerts = textwrap.indent(
        textwrap.dedent(f"""\
          slack: {{webhook_url_env: SLACK_WEBHOOK_URL}}
          webhook: {{url: "{http_receiver.url("/hook")}", secret_env: HOOK_SECRET}}
        """),
        "  ",
    )
    project(config("{quality: 1.0}", samples=2, alerts=alerts, signals="max_age_hours: 1"))
    run_day(capsys, 0)
    http_receiver.script(500, 200, 200)
    out = json.loads(check_day(capsys, 3).out)
    assert sorted(c["channel"] for c in out["delivery"]["sent"]) == ["slack", "webhook"]
    slack = [r for r in http_receiver.received() if r.path == "/slack"]
    assert len(slack) == 2  # 500, then the retry that got 200
    [hook] = [r for r in http_receiver.received() if r.path == "/hook"]
    expected = hmac.new(HOOK_SECRET.encode(), hook.body, hashlib.sha256).hexdigest()
    assert hook.headers["x-canary-signature"] == f"sha256={expected}"
    assert hook.json()["events"][0]["signal"] == "stale"


def test_outage_raises_availability_and_holds_quality(tmp_path, capsys, project):
    sim = f"{{quality: 0.97, faults: [{{kind: status, status: 529, from: {day(10)}, to: {day(11)}}}]}}"
    project(config(sim))
    for n in range(13):
        run_day(capsys, n)
        result = check_day(capsys, n)
        out = json.loads(result.out)
        signals = {(e["signal"], e["event"]) for e in out["events"]}
        if n in (10, 11):
            assert result.code == 1
            assert ("quality", "firing") not in signals
            assert any(h["signal"] == "quality" for h in out["held"])
    [episode] = alerts_of(tmp_path, "availability")
    assert (episode.opened_day, episode.resolved_day) == (
        START + timedelta(days=10),
        START + timedelta(days=12),
    )
    assert alerts_of(tmp_path, "quality") == []


def test_served_model_change_and_token_inflation_fire_their_own_alerts(tmp_path, capsys, project):
    sim = f"{{quality: 1.0, periods: [{{from: {day(6)}, served_model: drifty-1-distilled, token_inflation: 1.6}}]}}"
    project(config(sim, samples=3))
    codes = []
    for n in range(8):
        run_day(capsys, n)
        codes.append(check_day(capsys, n).code)
    assert codes[:6] == [0] * 6 and codes[6] == 1
    [served] = alerts_of(tmp_path, "served_model")
    assert served.opened_day == START + timedelta(days=6) and "drifty-1-distilled" in served.summary
    assert served.state == "resolved"  # it is the new normal the next day
    [tokens] = alerts_of(tmp_path, "tokens")
    assert tokens.opened_day == START + timedelta(days=6) and tokens.state == "firing"
    assert alerts_of(tmp_path, "quality") == []


def test_latency_alert_fires_on_a_scripted_slowdown(tmp_path, capsys, project):
    # The simulator holds every reply 2.5 s from day 4 on: wall time can only add to that, so the
    # alert fires however busy the host is, and the baseline days (no scripted delay) stay fast
    # enough that the +100 % / +1 s rule is met (a baseline p95 above 1.5 s would hide it).
    sim = f"{{quality: 1.0, periods: [{{from: {day(4)}, latency_ms: 2500}}]}}"
    project(config(sim, samples=2, latency_min_delta_s=1.0))
    codes = []
    for n in range(5):
        run_day(capsys, n)
        codes.append(check_day(capsys, n).code)
    assert codes == [0, 0, 0, 0, 1]
    [latency] = alerts_of(tmp_path, "latency")
    assert latency.opened_day == START + timedelta(days=4) and latency.state == "firing"
    assert "p95 latency" in latency.summary


def test_missed_run_fires_the_dead_mans_switch(tmp_path, capsys, project):
    project(config("{quality: 1.0}", samples=2))
    run_day(capsys, 0)
    assert check_day(capsys, 0).code == 0
    assert check_day(capsys, 1).code == 0  # 24 h after the end of day 0: within 26 h
    late = check_day(capsys, 2)
    assert late.code == 1
    [stale] = alerts_of(tmp_path, "stale")
    assert stale.model_id == "*" and stale.state == "firing"
    run_day(capsys, 2)
    assert check_day(capsys, 2).code == 0
    assert alerts_of(tmp_path, "stale")[0].state == "resolved"


def test_silence_command_mutes_and_alerts_command_lists(tmp_path, capsys, project):
    project(config("{quality: 1.0}", samples=2))
    run_day(capsys, 0)
    until = (datetime.now(UTC).date() + timedelta(days=9)).isoformat()
    assert run_cli(capsys, "silence", "drifty", "--until", until, "--reason", "vendor incident").code == 0
    assert run_cli(capsys, "silence", "nope", "--until", until).code == 78
    result = check_day(capsys, 3)  # stale fires: scope "*" model "*" is not covered by drifty's silence
    assert result.code == 1
    listed = run_cli(capsys, "alerts", "--json")
    rows = json.loads(listed.out)
    assert [r["signal"] for r in rows] == ["stale"] and rows[0]["events"][0]["event"] == "opened"
    assert "stale" in run_cli(capsys, "alerts").out


def test_retirement_date_fires(tmp_path, capsys, project):
    text = config("{quality: 1.0}", samples=1).replace(
        "    price: {input_per_mtok: 1, output_per_mtok: 2}\n",
        f"    price: {{input_per_mtok: 1, output_per_mtok: 2}}\n    retires: {day(10)}\n",
    )
    project(text)
    run_day(capsys, 0)
    assert alerts_of(tmp_path, "retirement") == []
    check_day(capsys, 0)
    assert alerts_of(tmp_path, "retirement")[0].summary.startswith("drifty retires on")


def test_missing_channel_secret_exits_78_before_anything(tmp_path, capsys, project, monkeypatch):
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    project(config("{quality: 1.0}", alerts="  slack: {webhook_url_env: SLACK_WEBHOOK_URL}\n"))
    for argv in (["check"], ["run"]):
        result = run_cli(capsys, *argv)
        assert result.code == 78 and "SLACK_WEBHOOK_URL" in result.err
    assert not (tmp_path / "canary.db").exists() or not alerts_of(tmp_path, "stale")


def test_secrets_never_reach_messages_store_or_logs(
    tmp_path, capsys, project, monkeypatch, caplog, http_receiver: HttpReceiver, smtp_starttls, test_ca
):
    caplog.set_level("DEBUG")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", http_receiver.url(SLACK_SECRET_PATH))
    monkeypatch.setenv("HOOK_URL", http_receiver.url("/hook-secret-path-19ab"))
    monkeypatch.setenv("HOOK_SECRET", HOOK_SECRET)
    monkeypatch.setenv("CANARY_SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("CANARY_SMTP_USER", "canary")
    alerts = textwrap.indent(
        textwrap.dedent(f"""\
          delivery_attempts: 1
          email: {{host: 127.0.0.1, port: {smtp_starttls.port}, security: starttls, ca_file: "{test_ca.ca_file}", to: [a@example.com]}}
          slack: {{webhook_url_env: SLACK_WEBHOOK_URL}}
          webhook: {{url_env: HOOK_URL, secret_env: HOOK_SECRET}}
        """),
        "  ",
    )
    project(config("{quality: 1.0}", samples=2, alerts=alerts))
    run_day(capsys, 0)
    http_receiver.script(500, 500, 500, 500)  # failures too must not leak the URLs
    outputs = [
        check_day(capsys, 4),
        run_cli(capsys, "check", "--as-of", day(4)),
        run_cli(capsys, "alerts", "--all"),
    ]
    text = "".join(o.out + o.err for o in outputs) + caplog.text
    text += "".join(m.data.decode(errors="replace") for m in smtp_starttls.received())
    text += "".join(r.body.decode() for r in http_receiver.received())
    with sqlite3.connect(tmp_path / "canary.db") as conn:
        text += "\n".join(conn.iterdump())
    for secret in (SLACK_SECRET_PATH, "slack-secret-token", SMTP_PASSWORD, HOOK_SECRET, "hook-secret-path"):
        assert secret not in text, secret
    assert smtp_starttls.received()  # the mail did go out
