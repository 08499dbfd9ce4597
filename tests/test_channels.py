"""Alert channels against real receivers: aiosmtpd over TCP (plain, STARTTLS, SMTPS,
AUTH) and a real HTTP server standing in for Slack and a webhook endpoint."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import socket
import sqlite3
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from canary.alerts.channels import Channel, build_channels, render_text
from canary.alerts.channels.mail import message_id
from canary.alerts.channels.posting import parse_retry_after
from canary.alerts.message import AlertEvent, AlertMessage, DeliveryError
from canary.config.models import AlertsConfig, EmailChannel, SlackChannel, WebhookChannel
from canary.errors import EXIT_CONFIG, SetupError
from canary.store import Store
from canary.store import alerting as db
from tests.cli_helpers import run_cli
from tests.projects import write_project
from tests.receivers import (  # fixtures come via conftest's pytest_plugins
    HttpReceiver,
    SmtpReceiver,
    TestCA,
    drip,
    garbage,
    huge,
)

SLACK_TOKEN = "T0000/B0000/XXXXslacksecretXXXX"
HOOK_TOKEN = "hook-path-secret-7f3a"
HMAC_SECRET = "hmac-secret-value-91c2"
PASSWORD = "s3cret-pass-word"


def event(**overrides: object) -> AlertEvent:
    values: dict[str, object] = {
        "alert_id": "a1",
        "event": "firing",
        "model_id": "claude-main",
        "scope": "all canaries",
        "signal": "quality",
        "summary": "Quality dropped to 62%",
        "today": "62% (18/29)",
        "baseline": "95% over 14 days",
        "detail": "below the calibrated threshold 81%",
        "day": date(2025, 3, 4),
    }
    values.update(overrides)
    return AlertEvent(**values)  # type: ignore[arg-type]


def message(*events: AlertEvent, **overrides: object) -> AlertMessage:
    values: dict[str, object] = {
        "id": "msg-0001",
        "title": "canary: 1 alert firing",
        "events": events or (event(),),
        "created_at": datetime(2025, 3, 4, 6, 5, tzinfo=UTC),
        "report_url": "https://reports.example.org/canary/",
    }
    values.update(overrides)
    return AlertMessage(**values)  # type: ignore[arg-type]


def only(alerts: AlertsConfig, env: dict[str, str] | None = None, **kw: object) -> Channel:
    channels = build_channels(alerts.model_copy(update={"log": False}), env or {}, **kw)  # type: ignore[arg-type]
    assert len(channels) == 1
    return channels[0]


def email_config(port: int, security: str = "none", **kw: object) -> AlertsConfig:
    cfg = EmailChannel(
        host="127.0.0.1",
        port=port,
        security=security,
        to=["oncall@example.org"],
        sender="canary@example.org",
        timeout_s=5,
        **kw,
    )  # type: ignore[arg-type]
    return AlertsConfig(email=cfg)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port that is bound but not listening: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# --------------------------------------------------------------------------- text and log


def test_render_text_flattens_control_characters() -> None:
    msg = message(
        event(model_id="evil\nFAKE LOG LINE", detail="a\r\nb\u202ec"), event(event="resolved", today=None)
    )
    text = render_text(msg)
    assert text.startswith("canary: 1 alert firing\n")
    assert "[FIRING] evil FAKE LOG LINE / all canaries / quality" in text
    assert "[RESOLVED] claude-main" in text
    assert "why: a b c" in text
    assert "today: -   baseline: 95% over 14 days" in text
    assert text.endswith("Report: https://reports.example.org/canary/")
    assert not any(line.startswith("FAKE") for line in text.splitlines())


def test_log_channel_levels(caplog: pytest.LogCaptureFixture) -> None:
    (log,) = build_channels(AlertsConfig(), {})
    assert log.name == "log"
    with caplog.at_level(logging.DEBUG, logger="canary.alerts"):
        log.deliver(message(event(), event(event="resolved")))
        log.deliver(message(event(event="resolved", summary="Quality back to 96%")))
    firing, resolved = caplog.records
    assert (firing.name, firing.levelno) == ("canary.alerts", logging.WARNING)
    assert "Quality dropped to 62%" in firing.getMessage()
    assert resolved.levelno == logging.INFO
    assert "[RESOLVED]" in resolved.getMessage() and "Quality back to 96%" in resolved.getMessage()


def test_build_channels_order_and_log_switch(http_receiver: HttpReceiver) -> None:
    alerts = AlertsConfig(
        email=EmailChannel(host="127.0.0.1", to=["a@example.org"]),
        slack=SlackChannel(),
        webhook=WebhookChannel(url=http_receiver.url("/hook")),
    )
    env = {"SLACK_WEBHOOK_URL": http_receiver.url("/slack")}
    assert [c.name for c in build_channels(alerts, env)] == ["log", "email", "slack", "webhook"]
    assert [c.name for c in build_channels(alerts.model_copy(update={"log": False}), env)] == [
        "email",
        "slack",
        "webhook",
    ]
    assert all(isinstance(c, Channel) for c in build_channels(alerts, env))


# --------------------------------------------------------------------------- setup errors


def test_missing_env_names_every_variable() -> None:
    alerts = AlertsConfig(
        email=EmailChannel(
            host="h", to=["a@example.org"], user_env="SMTP_USER", password_env="SMTP_PASSWORD"
        ),
        slack=SlackChannel(),
        webhook=WebhookChannel(url_env="HOOK_URL", secret_env="HOOK_SECRET"),
    )
    with pytest.raises(SetupError) as info:
        build_channels(
            alerts, {"SMTP_USER": "user-value-x", "HOOK_SECRET": HMAC_SECRET, "SLACK_WEBHOOK_URL": ""}
        )
    assert info.value.exit_code == EXIT_CONFIG
    assert info.value.message == (
        "alerts: environment variables not set: SMTP_PASSWORD (alerts.email.password_env), "
        "SLACK_WEBHOOK_URL (alerts.slack.webhook_url_env), HOOK_URL (alerts.webhook.url_env)"
    )
    with pytest.raises(
        SetupError,
        match=r"^alerts: environment variable SLACK_WEBHOOK_URL \(alerts\.slack\.webhook_url_env\) is not set$",
    ):
        build_channels(AlertsConfig(slack=SlackChannel()), {})


def test_bad_values_are_named_by_variable_not_value() -> None:
    with pytest.raises(SetupError, match="SLACK_WEBHOOK_URL does not hold an http") as info:
        build_channels(
            AlertsConfig(slack=SlackChannel()), {"SLACK_WEBHOOK_URL": f"hooks.slack.com/{SLACK_TOKEN}"}
        )
    assert SLACK_TOKEN not in str(info.value)
    with pytest.raises(SetupError, match="HOOK_URL does not hold") as info:
        build_channels(AlertsConfig(webhook=WebhookChannel(url_env="HOOK_URL")), {"HOOK_URL": HOOK_TOKEN})
    assert HOOK_TOKEN not in str(info.value)


def test_email_setup_rules(tmp_path: Path) -> None:
    half = EmailChannel(host="h", to=["a@example.org"], user_env="SMTP_USER")
    with pytest.raises(SetupError, match="both user_env and password_env"):
        build_channels(AlertsConfig(email=half), {"SMTP_USER": "u"})
    clear = EmailChannel(host="h", security="none", to=["a@example.org"], user_env="U", password_env="P")
    with pytest.raises(SetupError, match="clear text") as info:
        build_channels(AlertsConfig(email=clear), {"U": "u", "P": PASSWORD})
    assert PASSWORD not in str(info.value)
    missing = EmailChannel(host="h", to=["a@example.org"], ca_file="certs/missing.pem")
    with pytest.raises(SetupError, match=r"ca_file: cannot load CA bundle .*certs/missing\.pem"):
        build_channels(AlertsConfig(email=missing), {}, base_dir=tmp_path)


# --------------------------------------------------------------------------- email


def test_email_delivered_with_subject_bodies_and_stable_message_id(smtp_server: SmtpReceiver) -> None:
    channel = only(email_config(smtp_server.port))
    msg = message(event(model_id="<script>alert(1)</script>", detail="R&D <b>bold</b>"))
    channel.deliver(msg)
    channel.deliver(msg)  # a re-delivery by the outbox
    first, second = smtp_server.received()
    assert first.mail_from == "canary@example.org" and first.rcpt_tos == ["oncall@example.org"]
    assert not first.tls  # security: none really is plain
    mail = first.message
    assert mail["Subject"] == "canary: 1 alert firing"
    assert mail["Message-ID"] == "<canary.msg-0001@example.org>" == second.message["Message-ID"]
    assert mail["Auto-Submitted"] == "auto-generated"
    plain = mail.get_body(("plain",)).get_content()
    assert "[FIRING] <script>alert(1)</script> / all canaries / quality" in plain
    assert "62% (18/29)" in plain and "https://reports.example.org/canary/" in plain
    page = mail.get_body(("html",)).get_content()
    assert "<script>" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "R&amp;D &lt;b&gt;bold&lt;/b&gt;" in page
    assert '<a href="https://reports.example.org/canary/">' in page


def test_message_id_for_unsafe_ids() -> None:
    mid = message_id("run 5/<x>", "Canary <canary@mail.example.org>")
    assert mid.startswith("<canary.") and mid.endswith("@mail.example.org>")
    assert mid == message_id("run 5/<x>", "canary@mail.example.org") and "<x>" not in mid[1:-1]


def test_starttls_verified_against_test_ca(smtp_starttls: SmtpReceiver, test_ca: TestCA) -> None:
    channel = only(email_config(smtp_starttls.port, "starttls", ca_file=str(test_ca.ca_file)))
    channel.deliver(message())
    (mail,) = smtp_starttls.received()
    assert mail.tls and mail.message["Subject"] == "canary: 1 alert firing"


def test_starttls_untrusted_certificate_is_refused(smtp_starttls: SmtpReceiver) -> None:
    channel = only(email_config(smtp_starttls.port, "starttls"))
    with pytest.raises(DeliveryError, match="TLS certificate not trusted"):
        channel.deliver(message())
    assert smtp_starttls.received() == []


def test_starttls_not_offered_never_falls_back_to_plain(smtp_server: SmtpReceiver) -> None:
    channel = only(email_config(smtp_server.port, "starttls"))
    with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
        channel.deliver(message())
    assert smtp_server.received() == []


def test_implicit_tls(test_ca: TestCA) -> None:
    with SmtpReceiver(tls=test_ca.server_context(), implicit_tls=True) as server:
        channel = only(email_config(server.port, "ssl", ca_file="ca.pem"), base_dir=test_ca.ca_file.parent)
        channel.deliver(message())
        (mail,) = server.received()
    assert mail.tls


def test_auth_success(smtp_auth: SmtpReceiver, test_ca: TestCA) -> None:
    alerts = email_config(
        smtp_auth.port, "starttls", ca_file=str(test_ca.ca_file), user_env="U", password_env="P"
    )
    only(alerts, {"U": "canary", "P": PASSWORD}).deliver(message())
    (mail,) = smtp_auth.received()
    assert mail.login == "canary" and mail.tls


def test_auth_failure_hides_password(
    smtp_auth: SmtpReceiver, test_ca: TestCA, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-" + PASSWORD
    alerts = email_config(
        smtp_auth.port, "starttls", ca_file=str(test_ca.ca_file), user_env="U", password_env="P"
    )
    channel = only(alerts, {"U": "canary", "P": wrong})
    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError, match="authentication failed") as info:
        channel.deliver(message())
    assert smtp_auth.received() == []
    text = str(info.value)
    assert "\n" not in text and wrong not in text and wrong not in repr(channel) and wrong not in caplog.text
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_smtp_server_down(closed_port: int) -> None:
    with pytest.raises(DeliveryError, match=rf"email via 127\.0\.0\.1:{closed_port}: connection refused"):
        only(email_config(closed_port)).deliver(message())


def test_smtp_down_then_back_on_the_same_port() -> None:
    first = SmtpReceiver().start()
    port = first.port
    first.stop()
    channel = only(email_config(port))
    with pytest.raises(DeliveryError, match="connection refused"):
        channel.deliver(message())
    with SmtpReceiver(port=port) as again:
        channel.deliver(message())  # the same channel object, as the outbox retries it
        assert [m.message["Message-ID"] for m in again.received()] == ["<canary.msg-0001@example.org>"]


def test_smtp_server_silent_times_out() -> None:
    with socket.socket() as silent:  # accepts TCP connections (backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        cfg = email_config(silent.getsockname()[1]).email.model_copy(update={"timeout_s": 0.05})  # type: ignore[union-attr]
        with pytest.raises(DeliveryError, match=r"no answer within 0\.05s"):
            only(AlertsConfig(email=cfg)).deliver(message())


# --------------------------------------------------------------------------- slack


def slack(receiver: HttpReceiver) -> tuple[Channel, str]:
    url = receiver.url(f"/services/{SLACK_TOKEN}")
    return only(AlertsConfig(slack=SlackChannel(timeout_s=5)), {"SLACK_WEBHOOK_URL": url}), url


def test_slack_block_kit_payload_is_escaped(http_receiver: HttpReceiver) -> None:
    channel, _ = slack(http_receiver)
    hostile = event(
        model_id="<script>x</script>", scope="R&D <!channel>", detail="see <http://evil|here> & more"
    )
    channel.deliver(
        message(
            hostile,
            event(event="resolved", today=None, baseline=None, day=None, report_url="https://r/x?a=1&b=2"),
        )
    )
    (req,) = http_receiver.received()
    assert req.method == "POST" and req.path == f"/services/{SLACK_TOKEN}"
    assert req.headers["content-type"].startswith("application/json")
    assert b"<script>" not in req.body and b"<!channel>" not in req.body and b"<http://evil" not in req.body
    payload = req.json()
    blocks = payload["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context"]
    assert blocks[0]["text"] == {"type": "plain_text", "text": "canary: 1 alert firing", "emoji": True}
    first = blocks[1]
    assert ":red_circle: *FIRING*  Quality dropped to 62%" in first["text"]["text"]
    assert "see &lt;http://evil|here&gt; &amp; more" in first["text"]["text"]
    fields = [f["text"] for f in first["fields"]]
    assert fields[:3] == [
        "*Model*\n&lt;script&gt;x&lt;/script&gt;",
        "*Scope*\nR&amp;D &lt;!channel&gt;",
        "*Signal*\nquality",
    ]
    assert (
        "*Today*\n62% (18/29)" in fields
        and "*Baseline*\n95% over 14 days" in fields
        and "*Day*\n2025-03-04" in fields
    )
    second = blocks[2]
    assert (
        "*RESOLVED*" in second["text"]["text"]
        and "<https://r/x?a=1&amp;b=2|details>" in second["text"]["text"]
    )
    assert [f["text"] for f in second["fields"]] == [
        "*Model*\nclaude-main",
        "*Scope*\nall canaries",
        "*Signal*\nquality",
    ]
    context = [e["text"] for e in blocks[3]["elements"]]
    assert context[0] == "<https://reports.example.org/canary/|Open the canary report>"
    assert payload["text"].startswith("canary: 1 alert firing\nFIRING: &lt;script&gt;")


def test_slack_limits_many_and_long_events(http_receiver: HttpReceiver) -> None:
    channel, _ = slack(http_receiver)
    events = [event(model_id=f"model-{i}", detail="&" * 5000) for i in range(60)]
    channel.deliver(message(*events, title="T" * 400))
    blocks = http_receiver.received()[0].json()["blocks"]
    assert len(blocks) == 50
    assert len(blocks[0]["text"]["text"]) <= 150
    sections = [b for b in blocks if b["type"] == "section"]
    assert len(sections) == 48 and "fields" not in sections[-1]
    assert sections[-1]["text"]["text"].startswith("*…and 13 more:* model-47 quality (FIRING)")
    for block in sections:
        text = block["text"]["text"]
        assert len(text) <= 3000 and "&am…" not in text
        assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
        assert len(block.get("fields", [])) <= 10


def test_slack_error_hides_url_then_retry_succeeds(
    http_receiver: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    channel, url = slack(http_receiver)
    http_receiver.script(500, (400, b"invalid_payload"))
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(DeliveryError) as first:
            channel.deliver(message())
        with pytest.raises(DeliveryError) as second:
            channel.deliver(message())
        channel.deliver(message())  # the receiver answers 200 now
    assert str(first.value) == "slack webhook answered HTTP 500"
    assert str(second.value) == "slack webhook answered HTTP 400 (invalid_payload)"
    assert len(http_receiver.received()) == 3
    for text in (str(first.value), str(second.value), caplog.text, repr(channel)):
        assert SLACK_TOKEN not in text and url not in text


def test_slack_unreachable_hides_url(closed_port: int, caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{closed_port}/services/{SLACK_TOKEN}"
    channel = only(AlertsConfig(slack=SlackChannel(timeout_s=5)), {"SLACK_WEBHOOK_URL": url})
    with (
        caplog.at_level(logging.DEBUG),
        pytest.raises(DeliveryError, match="^slack webhook: ConnectError") as info,
    ):
        channel.deliver(message())
    assert SLACK_TOKEN not in str(info.value) and SLACK_TOKEN not in caplog.text
    assert info.value.__cause__ is None


# --------------------------------------------------------------------------- webhook


def test_webhook_payload_signature_and_headers(http_receiver: HttpReceiver) -> None:
    hook = WebhookChannel(
        url_env="HOOK_URL",
        secret_env="HOOK_SECRET",
        headers={"Authorization": "Bearer abc", "X-Canary-Delivery": "spoof"},
    )
    env = {"HOOK_URL": http_receiver.url(f"/in/{HOOK_TOKEN}"), "HOOK_SECRET": HMAC_SECRET}
    msg = message(event(), event(event="repeat", day=None, report_url="https://r/1"))
    only(AlertsConfig(webhook=hook), env).deliver(msg)
    (req,) = http_receiver.received()
    expected = "sha256=" + hmac.new(HMAC_SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["x-canary-signature"], expected)
    assert req.headers["x-canary-delivery"] == "msg-0001"
    assert req.headers["authorization"] == "Bearer abc"
    payload = json.loads(req.body)
    assert payload["id"] == "msg-0001" and payload["title"] == "canary: 1 alert firing"
    assert payload["created_at"] == "2025-03-04T06:05:00+00:00"
    assert payload["report_url"] == "https://reports.example.org/canary/"
    assert payload["events"][0] == {
        "alert_id": "a1",
        "event": "firing",
        "model_id": "claude-main",
        "scope": "all canaries",
        "signal": "quality",
        "summary": "Quality dropped to 62%",
        "today": "62% (18/29)",
        "baseline": "95% over 14 days",
        "detail": "below the calibrated threshold 81%",
        "day": "2025-03-04",
        "report_url": None,
    }
    assert payload["events"][1]["event"] == "repeat" and payload["events"][1]["day"] is None


def test_webhook_without_secret_is_unsigned(http_receiver: HttpReceiver) -> None:
    only(AlertsConfig(webhook=WebhookChannel(url=http_receiver.url("/plain")))).deliver(message())
    (req,) = http_receiver.received()
    assert "x-canary-signature" not in req.headers and req.path == "/plain"


def test_webhook_secrets_never_in_errors_or_logs(
    http_receiver: HttpReceiver, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    hook = WebhookChannel(url_env="HOOK_URL", secret_env="HOOK_SECRET", timeout_s=5)
    failing = only(
        AlertsConfig(webhook=hook),
        {"HOOK_URL": http_receiver.url(f"/in/{HOOK_TOKEN}"), "HOOK_SECRET": HMAC_SECRET},
    )
    down = only(
        AlertsConfig(webhook=hook),
        {"HOOK_URL": f"http://127.0.0.1:{closed_port}/in/{HOOK_TOKEN}", "HOOK_SECRET": HMAC_SECRET},
    )
    http_receiver.script(503)
    errors = []
    with caplog.at_level(logging.DEBUG):
        for channel in (failing, down):
            with pytest.raises(DeliveryError) as info:
                channel.deliver(message())
            errors.append(str(info.value))
        failing.deliver(message())  # success is not logged with the URL either
    assert errors[0] == "webhook (URL from $HOOK_URL) answered HTTP 503"
    assert errors[1].startswith("webhook (URL from $HOOK_URL): ConnectError")
    for text in (*errors, caplog.text, repr(failing), repr(down)):
        assert HOOK_TOKEN not in text and HMAC_SECRET not in text


def test_webhook_config_url_error_names_origin_only(closed_port: int) -> None:
    channel = only(
        AlertsConfig(webhook=WebhookChannel(url=f"http://127.0.0.1:{closed_port}/x?token=abc", timeout_s=5))
    )
    with pytest.raises(
        DeliveryError, match=rf"^webhook http://127\.0\.0\.1:{closed_port}: ConnectError"
    ) as info:
        channel.deliver(message())
    assert "token=abc" not in str(info.value)


# --------------------------------------------------------------------------- permanent or temporary


def outcome(channel: Channel) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        channel.deliver(message())
    return info.value


@pytest.mark.parametrize(
    ("answer", "permanent", "reason"),
    [
        ((200, b'{"ok": false, "error": "channel_not_found"}'), True, "channel_not_found"),
        ((200, b"invalid_token"), True, "invalid_token"),
        ((404, b"no_service"), True, "no_service"),
        ((410, b"channel_is_archived"), True, "channel_is_archived"),
        ((403, b"action_prohibited"), True, "action_prohibited"),
        ((400, b"<html>bad request</html>"), True, "HTTP 400"),
        ((200, b"<html>captive portal</html>"), False, "an answer that is not `ok` (27 bytes)"),
        ((200, b""), False, "an empty answer instead of `ok`"),
        ((200, b'{"ok": false, "error": "rate_limited"}'), False, "rate_limited"),
        ((429, b"rate_limited", {"Retry-After": "30"}), False, "HTTP 429 (rate_limited)"),
        ((503, b"rollup_error"), False, "HTTP 503"),
    ],
)
def test_slack_answers_are_classified(
    http_receiver: HttpReceiver, answer, permanent: bool, reason: str
) -> None:
    channel, url = slack(http_receiver)
    http_receiver.script(answer)
    error = outcome(channel)
    assert (error.permanent, error.reason) == (permanent, reason)
    assert len(http_receiver.received()) == 1 and SLACK_TOKEN not in str(error) and "\n" not in str(error)
    assert error.retry_after_s == (30.0 if answer[0] == 429 else None)


def test_slack_ok_answers_are_deliveries(http_receiver: HttpReceiver) -> None:
    channel, _ = slack(http_receiver)
    http_receiver.script((200, b"ok\n"), (200, b'{"ok": true}'))
    channel.deliver(message())
    channel.deliver(message())
    assert len(http_receiver.received()) == 2


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (400, True),
        (401, True),
        (404, True),
        (410, True),
        (301, True),
        (408, False),
        (429, False),
        (500, False),
        (503, False),
    ],
)
def test_webhook_statuses_are_classified(http_receiver: HttpReceiver, status: int, permanent: bool) -> None:
    http_receiver.script((status, b"", {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}))
    error = outcome(only(AlertsConfig(webhook=WebhookChannel(url=http_receiver.url("/hook"), timeout_s=5))))
    assert error.permanent is permanent and str(error).startswith(
        f"webhook http://127.0.0.1:{http_receiver.port} answered HTTP {status}"
    )
    assert (error.retry_after_s is not None and error.retry_after_s > 86400 * 365) is (not permanent)


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("120") == 120 and parse_retry_after(" 0 ") == 0
    assert parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now) == 60
    assert parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now) == 0  # in the past: now
    for garbled in ("soon", "", "inf", "nan", None):
        assert parse_retry_after(garbled, now) is None


@pytest.mark.parametrize(
    ("hostile", "words"),
    [
        (drip, "no complete answer within 0.3s"),
        (huge, "an answer that is not `ok` (65536 bytes)"),
        (garbage, "RemoteProtocolError"),
    ],
)
def test_hostile_slack_receiver_ends_as_a_temporary_failure(
    http_receiver: HttpReceiver, hostile, words: str
) -> None:
    """A receiver that drips its answer, sends 100 MB or answers garbage: one bounded attempt,
    a recorded reason, no hang and no memory blow-up (at most 64 kB of the answer is read).
    Only the drip needs a short timeout: it never finishes, whatever the bound."""
    url = http_receiver.url(f"/services/{SLACK_TOKEN}")
    timeout = 0.3 if hostile is drip else 10
    channel = only(AlertsConfig(slack=SlackChannel(timeout_s=timeout)), {"SLACK_WEBHOOK_URL": url})
    http_receiver.script(hostile)
    error = outcome(channel)
    assert words in str(error) and not error.permanent
    assert SLACK_TOKEN not in str(error) and "\n" not in str(error)


def test_hostile_webhook_body_on_a_2xx_is_still_a_delivery(http_receiver: HttpReceiver) -> None:
    http_receiver.script(huge)
    only(AlertsConfig(webhook=WebhookChannel(url=http_receiver.url("/hook"), timeout_s=5))).deliver(message())
    assert len(http_receiver.received()) == 1


def test_smtp_550_and_535_are_permanent_451_is_not(smtp_auth: SmtpReceiver, test_ca: TestCA) -> None:
    with SmtpReceiver() as relay:
        channel = only(email_config(relay.port))
        relay.refuse_recipients("550 5.1.1 mailbox unavailable")
        refused = outcome(channel)
        assert refused.permanent and refused.reason == "550 5.1.1 mailbox unavailable"
        relay.refuse_recipients("451 4.3.0 try again later")
        busy = outcome(channel)
        assert not busy.permanent and busy.reason.startswith("451")
        assert relay.received() == [] and relay.rcpt_refusals == 2
    alerts = email_config(
        smtp_auth.port, "starttls", ca_file=str(test_ca.ca_file), user_env="U", password_env="P"
    )
    denied = outcome(only(alerts, {"U": "canary", "P": "wrong-" + PASSWORD}))
    assert denied.permanent and denied.reason == "535 authentication failed" and PASSWORD not in str(denied)


def test_smtp_server_dripping_its_greeting_is_cut_off() -> None:
    """Each byte comes well within the per-read timeout; the conversation bound still ends it."""
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def serve() -> None:
            conn, _ = listener.accept()
            with conn, contextlib.suppress(OSError):
                while not stop.is_set():
                    conn.sendall(b"2")
                    stop.wait(0.005)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        cfg = email_config(listener.getsockname()[1]).email.model_copy(update={"timeout_s": 1})  # type: ignore[union-attr]
        try:
            error = outcome(only(AlertsConfig(email=cfg)))
        finally:
            stop.set()
            thread.join(timeout=30)
    assert "did not finish within 4s" in str(error) and not error.permanent


# --------------------------------------------------------------------------- end to end through `canary check`

SLACK_PATH = f"/services/{SLACK_TOKEN}"
CHANNEL_NOT_FOUND = (200, b'{"ok": false, "error": "channel_not_found"}')


def delivery_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alerts: str) -> Path:
    """One sim model; `signals.max_age_hours: 1`, so checking a day after the last run fires the
    dead man's switch: an alert to deliver without waiting for a regression."""
    config = (
        "store: sqlite:///canary.db\n"
        "defaults: {samples: 1, timeout_s: 5, retry: {attempts: 0, backoff_s: [0.001]}}\n"
        "models:\n  - {id: m, provider: sim, model: m}\n"
        "signals: {max_age_hours: 1}\n"
        "alerts:\n  log: false\n  repeat_hours: 1000\n" + textwrap.indent(textwrap.dedent(alerts), "  ")
    )
    path = write_project(tmp_path, config)
    monkeypatch.chdir(tmp_path)
    return path


def cli_run(capsys: pytest.CaptureFixture, day: str) -> None:
    result = run_cli(capsys, "run", "--as-of", day, "--no-check", "-q")
    assert result.code == 0, result.err


def cli_check(capsys: pytest.CaptureFixture, day: str = "2026-03-04") -> tuple[int, dict]:
    result = run_cli(capsys, "check", "--as-of", day, "--json")
    assert "Traceback" not in result.err, result.err
    return result.code, json.loads(result.out)


def rows(tmp_path: Path) -> list:
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        return sorted(db.outbox(store), key=lambda r: (r.created_at, r.channel))


def channel_alerts(tmp_path: Path) -> list:
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        return [a for a in db.list_alerts(store, include_resolved=True) if a.signal == "channel"]


def make_due(tmp_path: Path, *, first_attempt_hours_ago: float | None = None) -> None:
    """Time passing for the outbox: backoffs are over (and, if asked, the first attempt is that old)."""
    with sqlite3.connect(tmp_path / "canary.db") as conn:
        conn.execute("UPDATE notifications SET next_attempt_at = NULL WHERE status = 'queued'")
        if first_attempt_hours_ago is not None:
            conn.execute(
                "UPDATE notifications SET first_attempt_at = datetime('now', ?) WHERE status = 'queued'",
                (f"-{first_attempt_hours_ago} hours",),
            )


def plain(mail) -> str:
    return mail.message.get_body(("plain",)).get_content()


def test_slack_channel_not_found_fails_once_and_pages_on_email_until_slack_delivers_again(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    http_receiver: HttpReceiver,
    smtp_server: SmtpReceiver,
) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", http_receiver.url(SLACK_PATH))
    delivery_project(
        tmp_path,
        monkeypatch,
        f"""\
        slack: {{webhook_url_env: SLACK_WEBHOOK_URL}}
        email: {{host: 127.0.0.1, port: {smtp_server.port}, security: none, to: [oncall@example.org]}}
        """,
    )
    http_receiver.always(CHANNEL_NOT_FOUND)
    cli_run(capsys, "2026-03-01")
    code, out = cli_check(capsys)

    assert code == 1
    assert len(http_receiver.received()) == 1  # permanent: not retried, not even within the check
    mails = smtp_server.received()
    assert len(mails) == 2  # the dead man's switch, then the channel alert
    assert "no completed canary run" in plain(mails[0])
    assert mails[1].message["Subject"] == "canary: Slack delivery is failing: channel_not_found"
    assert "Slack delivery is failing: channel_not_found" in plain(mails[1])
    [failed] = out["delivery"]["gave_up"]
    assert failed["channel"] == "slack" and "channel_not_found" in failed["error"]
    assert [(e["event"], e["summary"]) for e in out["delivery"]["channel_events"]] == [
        ("firing", "Slack delivery is failing: channel_not_found")
    ]
    assert {(a["signal"], a["scope"]) for a in out["firing"]} == {("stale", "*"), ("channel", "slack")}
    stale_msg, channel_msg = rows(tmp_path)[0].message_id, rows(tmp_path)[-1].message_id
    assert [(r.message_id, r.channel, r.status) for r in rows(tmp_path)] == [
        (stale_msg, "email", "sent"),
        (stale_msg, "slack", "failed"),
        (channel_msg, "email", "sent"),
    ]  # the channel alert went to the working channel only
    slack_row = next(r for r in rows(tmp_path) if r.channel == "slack")
    assert "channel_not_found" in (slack_row.last_error or "") and slack_row.attempts == 1
    assert SLACK_TOKEN not in (slack_row.last_error or "")

    code, out = cli_check(capsys)  # nothing new: nothing sent, nothing retried, nothing re-paged
    assert code == 1 and out["delivery"]["sent"] == [] and out["delivery"]["channel_events"] == []
    assert len(http_receiver.received()) == 1 and len(smtp_server.received()) == 2

    listing = run_cli(capsys, "alerts")
    assert "Slack delivery is failing: channel_not_found" in " ".join(listing.out.split())
    assert "notification failed via slack" in listing.out
    status = run_cli(capsys, "status")
    assert "0 queued, 1 failed" in status.out and "failed via slack" in status.out
    assert "channel_not_found" in status.out and SLACK_TOKEN not in status.out + listing.out

    http_receiver.always(None)  # the channel is fixed: Slack says `ok` again
    cli_run(capsys, "2026-03-04")
    code, out = cli_check(capsys)
    assert code == 0, json.dumps(out)
    assert [(e["event"], e["summary"]) for e in out["delivery"]["channel_events"]] == [
        ("resolved", "Slack delivers again")
    ]
    slack_bodies = [r.json()["text"] for r in http_receiver.received()[1:]]
    # the gap since 03-01 (said once by the run's check; it stands for the dead man's switch
    # resolving too, which is recorded but not sent again), then the notice
    assert len(slack_bodies) == 2, slack_bodies
    assert "monitoring gap" in slack_bodies[0] and "Slack delivers again" in slack_bodies[1]
    mails = [plain(m) for m in smtp_server.received()]
    assert len(mails) == 4 and "monitoring gap" in mails[2] and "Slack delivers again" in mails[3]
    assert not any("resolved" in m.split("\n", 1)[0] and "last completed run" in m for m in mails)
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        [stale] = [a for a in db.list_alerts(store, include_resolved=True) if a.signal == "stale"]
    assert stale.state == "resolved"  # resolved all the same
    [alert] = channel_alerts(tmp_path)
    assert alert.state == "resolved" and alert.notify_count == 1


@pytest.mark.parametrize("broken", ["email", "webhook"])
def test_a_channel_refusing_for_good_is_reported_once_on_the_other(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    http_receiver: HttpReceiver,
    smtp_server: SmtpReceiver,
    broken: str,
) -> None:
    """SMTP 550 on every recipient; a webhook answering 404: each fails its notification and is
    announced, once, on the channel that works."""
    delivery_project(
        tmp_path,
        monkeypatch,
        f"""\
        delivery_attempts: 3
        email: {{host: 127.0.0.1, port: {smtp_server.port}, security: none, to: [oncall@example.org]}}
        webhook: {{url: "{http_receiver.url("/hook")}"}}
        """,
    )
    if broken == "email":
        smtp_server.refuse_recipients("550 5.1.1 mailbox unavailable")
    else:
        http_receiver.always((404, b"not found"))
    cli_run(capsys, "2026-03-01")
    for _ in range(2):
        code, _out = cli_check(capsys)
        assert code == 1
    hooks = [r.json() for r in http_receiver.received()]
    failed = [(r.channel, r.last_error) for r in rows(tmp_path) if r.status == "failed"]
    [alert] = channel_alerts(tmp_path)
    if broken == "email":
        assert smtp_server.rcpt_refusals == 1 and smtp_server.received() == []
        assert len(failed) == 1 and failed[0][0] == "email" and "550" in failed[0][1]
        assert alert.summary == "Email delivery is failing: 550 5.1.1 mailbox unavailable"
        assert [h["title"] for h in hooks][1:] == [
            "canary: Email delivery is failing: 550 5.1.1 mailbox unavailable"
        ]
    else:
        assert len(hooks) == 1  # the stale alert, refused once and never again
        assert len(failed) == 1 and failed[0][0] == "webhook" and "HTTP 404" in failed[0][1]
        assert alert.summary == "Webhook delivery is failing: HTTP 404 (not found)"
        subjects = [m.message["Subject"] for m in smtp_server.received()]
        assert (
            len(subjects) == 2 and subjects[1] == "canary: Webhook delivery is failing: HTTP 404 (not found)"
        )
    assert alert.state == "firing" and alert.notify_count == 1


def test_429_retry_after_is_honoured_across_checks(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    http_receiver: HttpReceiver,
) -> None:
    delivery_project(
        tmp_path,
        monkeypatch,
        f"""\
        webhook: {{url: "{http_receiver.url("/hook")}"}}
        """,
    )
    http_receiver.script((429, b"slow down", {"Retry-After": "3600"}))
    cli_run(capsys, "2026-03-01")
    before = datetime.now(UTC)
    code, out = cli_check(capsys)
    assert code == 1 and len(out["delivery"]["failed"]) == 1 and out["delivery"]["gave_up"] == []
    assert len(http_receiver.received()) == 1  # asked to wait an hour: no retry inside this check
    [row] = rows(tmp_path)
    assert row.status == "queued" and row.next_attempt_at is not None
    assert row.next_attempt_at >= before + timedelta(seconds=3600)

    code, out = cli_check(capsys)  # a later check before the hour is up does not knock
    assert out["delivery"]["deferred"] == 1 and len(http_receiver.received()) == 1

    make_due(tmp_path)
    code, out = cli_check(capsys)
    assert [d["channel"] for d in out["delivery"]["sent"]] == ["webhook"] and len(
        http_receiver.received()
    ) == 2
    assert [r.status for r in rows(tmp_path)] == ["sent"] and channel_alerts(tmp_path) == []


def test_503_until_the_give_up_age_fails_the_notification_and_says_so(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    http_receiver: HttpReceiver,
    smtp_server: SmtpReceiver,
) -> None:
    delivery_project(
        tmp_path,
        monkeypatch,
        f"""\
        delivery_attempts: 2
        give_up_hours: 2
        webhook: {{url: "{http_receiver.url("/hook")}"}}
        email: {{host: 127.0.0.1, port: {smtp_server.port}, security: none, to: [oncall@example.org]}}
        """,
    )
    http_receiver.always(503)
    cli_run(capsys, "2026-03-01")
    code, out = cli_check(capsys)
    assert (
        len(http_receiver.received()) == 2 and len(out["delivery"]["failed"]) == 1
    )  # two tries, still queued
    assert channel_alerts(tmp_path) == [] and len(smtp_server.received()) == 1

    make_due(tmp_path, first_attempt_hours_ago=3)  # three hours of 503s later
    code, out = cli_check(capsys)
    assert len(http_receiver.received()) == 4  # one last round, then no more
    [gave_up] = out["delivery"]["gave_up"]
    assert gave_up["error"].startswith("gave up after 2 h: webhook http://127.0.0.1:")
    [alert] = channel_alerts(tmp_path)
    assert alert.summary == "Webhook delivery is failing: gave up after 2 h (HTTP 503)"
    assert (
        len(smtp_server.received()) == 2
        and "gave up after 2 h" in smtp_server.received()[1].message["Subject"]
    )
    status = run_cli(capsys, "status", "--json")
    [failed] = json.loads(status.out)["notifications_failed"]
    assert failed["channel"] == "webhook" and failed["error"].startswith("gave up after 2 h")
    make_due(tmp_path)
    cli_check(capsys)
    assert len(http_receiver.received()) == 4  # failed is final


def test_an_answer_echoing_the_url_token_never_reaches_the_error(http_receiver: HttpReceiver) -> None:
    hook = WebhookChannel(url_env="HOOK_URL", timeout_s=5)
    channel = only(
        AlertsConfig(webhook=hook), {"HOOK_URL": http_receiver.url(f"/in/{HOOK_TOKEN}?key=abcdef123")}
    )
    http_receiver.script((404, HOOK_TOKEN.encode()), (400, b"abcdef123"), (400, b"invalid_payload"))
    reasons = []
    for _ in range(3):
        error = outcome(channel)
        assert error.permanent and HOOK_TOKEN not in str(error) and "abcdef123" not in str(error)
        reasons.append(error.reason)
    assert reasons == [
        "HTTP 404",
        "HTTP 400",
        "HTTP 400 (invalid_payload)",
    ]  # an echo is withheld, a hint is not


def test_smtp_535_is_reported_on_the_webhook_without_the_password(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    http_receiver: HttpReceiver,
    smtp_auth: SmtpReceiver,
    test_ca: TestCA,
) -> None:
    wrong = "wrong-" + PASSWORD
    monkeypatch.setenv("SMTP_USER", "canary")
    monkeypatch.setenv("SMTP_PASSWORD", wrong)
    delivery_project(
        tmp_path,
        monkeypatch,
        f"""\
        email: {{host: 127.0.0.1, port: {smtp_auth.port}, security: starttls, ca_file: "{test_ca.ca_file}",
                 user_env: SMTP_USER, password_env: SMTP_PASSWORD, to: [oncall@example.org]}}
        webhook: {{url: "{http_receiver.url("/hook")}"}}
        """,
    )
    cli_run(capsys, "2026-03-01")
    code, out = cli_check(capsys)
    assert code == 1 and smtp_auth.received() == []
    [(channel, error)] = [(r.channel, r.last_error or "") for r in rows(tmp_path) if r.status == "failed"]
    assert channel == "email" and "authentication failed (535" in error
    titles = [r.json()["title"] for r in http_receiver.received()]
    assert titles[1:] == ["canary: Email delivery is failing: 535 authentication failed"]
    status = run_cli(capsys, "status")
    for text in (json.dumps(out), error, status.out, *titles):
        assert wrong not in text
