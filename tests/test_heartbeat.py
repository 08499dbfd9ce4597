"""Issue 8 part 12: a heartbeat a dead host cannot fake. `canary run` (and the daemon's job)
pings a Healthchecks-style URL at start, on success and on failure, with the run's summary;
a heartbeat server that is down, slow, answers 500 or garbage never changes the run."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import closing
from urllib.parse import parse_qs, urlsplit

import pytest

from canary.config.models import SimBehaviour, SimFault
from canary.heartbeat import Heartbeat, build_ping, redact
from canary.schedule import serve
from tests.cli_helpers import config_with, remote_model, run_cli, script_the_sim
from tests.projects import SIM_CONFIG, write_project
from tests.receivers import HttpReceiver

TOKEN = "0f9c1b7e-hb-token-do-not-print"


def _path(request) -> str:
    return urlsplit(request.path).path


def _query(request) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.path).query)


def _project(tmp_path, heartbeat: str = "heartbeat: {}\n"):
    return write_project(tmp_path, SIM_CONFIG + heartbeat)


@pytest.fixture
def ping_url(http_receiver, monkeypatch) -> str:
    url = http_receiver.url(f"/ping/{TOKEN}")
    monkeypatch.setenv("CANARY_HEARTBEAT_URL", url)
    return url


def _no_token(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text


def test_green_run_pings_start_then_success_with_its_summary(
    tmp_path, capsys, http_receiver, ping_url
) -> None:
    path = _project(tmp_path)
    result = run_cli(capsys, "run", "-q", "--config", str(path))
    assert result.code == 0, result.err
    got = http_receiver.received()
    assert [(r.method, _path(r)) for r in got] == [
        ("POST", f"/ping/{TOKEN}/start"),
        ("POST", f"/ping/{TOKEN}"),
    ]
    assert _query(got[0])["rid"] == _query(got[1])["rid"]  # Healthchecks pairs start and end by rid
    start, end = (r.body.decode() for r in got)
    assert "2 samples planned, 0 already stored" in start
    assert "exit 0" in end and "samples: 2 this run (pass 2, fail 0, unavailable 0)" in end
    assert "alerts firing: 0" in end
    _no_token(result.out, result.err)


def test_second_run_of_the_day_still_pings(tmp_path, capsys, http_receiver, ping_url) -> None:
    path = _project(tmp_path)
    assert run_cli(capsys, "run", "-q", "--config", str(path)).code == 0
    assert run_cli(capsys, "run", "-q", "--config", str(path)).code == 0  # nothing left to run: still alive
    assert [_path(r).rsplit("/", 1)[-1] for r in http_receiver.received()] == ["start", TOKEN, "start", TOKEN]


def test_a_model_that_cannot_be_monitored_pings_fail(
    tmp_path, capsys, server, http_receiver, ping_url, monkeypatch
) -> None:
    monkeypatch.setenv("CANARY_TEST_KEY", "sk-test-key-for-401")
    models = remote_model("good", "good", server) + remote_model("bad", "m401", server)
    path = write_project(tmp_path, config_with(models) + "heartbeat: {}\n")
    script_the_sim(
        server,
        path,
        {"good": SimBehaviour(), "m401": SimBehaviour(faults=[SimFault(kind="status", status=401)])},
    )
    result = run_cli(capsys, "run", "-q", "--config", str(path))
    assert result.code == 69
    got = http_receiver.received()
    assert [_path(r) for r in got] == [f"/ping/{TOKEN}/start", f"/ping/{TOKEN}/fail"]
    body = got[1].body.decode()
    assert "exit 69" in body and "models that could not be monitored: bad" in body
    assert "sk-test-key-for-401" not in body


def test_a_run_that_raises_pings_fail_and_keeps_its_exit_code(
    tmp_path, capsys, http_receiver, ping_url
) -> None:
    """A broken scorer plugin would be 70; here the store cannot be opened: 74, after /fail."""
    path = _project(tmp_path)
    (tmp_path / "canary.db").mkdir()  # a directory where the SQLite file should be
    result = run_cli(capsys, "run", "-q", "--config", str(path))
    assert result.code == 74, result.err
    got = http_receiver.received()
    assert [_path(r) for r in got] == [f"/ping/{TOKEN}/fail"]  # never started: no /start
    assert "exit 74" in got[0].body.decode() and "error: " in got[0].body.decode()


class _Silent:
    """Accepts connections and never answers: a heartbeat server that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.conns: list[socket.socket] = []
        self.done = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/ping/{TOKEN}"

    def close(self) -> None:
        self.done.set()
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent() -> Iterator[_Silent]:
    server = _Silent()
    yield server
    server.close()


def _refusing_url() -> str:
    with closing(socket.socket()) as sock:  # a port nobody listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/ping/{TOKEN}"


@pytest.mark.parametrize("fault", ["500", "slow", "refused", "garbage"])
def test_a_broken_heartbeat_server_never_changes_the_run(
    tmp_path, capsys, monkeypatch, http_receiver, silent, fault
) -> None:
    style = "healthchecks"
    if fault == "500":
        http_receiver.default_status = 500
        url = http_receiver.url(f"/ping/{TOKEN}")
    elif fault == "slow":
        url = silent.url
    elif fault == "refused":
        url = _refusing_url()
    else:  # an Uptime Kuma push URL answering 200 with something that is not {"ok": true}
        style = "uptime_kuma"
        url = http_receiver.url(f"/api/push/{TOKEN}?status=up&msg=OK&ping=")
        http_receiver.script((200, b"<html>garbage</html>"))
    monkeypatch.setenv("CANARY_HEARTBEAT_URL", url)
    path = _project(tmp_path, f"heartbeat: {{style: {style}, timeout_s: 0.5}}\n")
    result = run_cli(capsys, "run", "-q", "--config", str(path))
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if "heartbeat" in line]
    expected = {
        "500": "answered HTTP 500",
        "slow": "no answer within 0.5 s",
        "refused": "ConnectError",
        "garbage": 'answered HTTP 200 without {"ok": true}',
    }[fault]
    pings = 1 if style == "uptime_kuma" else 2  # Uptime Kuma has no "started"
    assert len(warnings) == pings and all(expected in w for w in warnings), result.err
    assert all("http://127.0.0.1:" in w and "/…" in w for w in warnings)  # its origin only
    _no_token(result.out, result.err)


def test_unset_variable_warns_once_and_runs(tmp_path, capsys, monkeypatch, http_receiver) -> None:
    monkeypatch.delenv("CANARY_HEARTBEAT_URL", raising=False)
    path = _project(tmp_path)
    result = run_cli(capsys, "run", "-q", "--config", str(path))
    assert result.code == 0
    assert result.err.count("CANARY_HEARTBEAT_URL is not set") == 1
    assert http_receiver.received() == []


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("cronitor", [("GET", "run"), ("GET", "complete")]),
        ("uptime_kuma", [("GET", "up")]),
    ],
)
def test_other_services(tmp_path, capsys, monkeypatch, http_receiver, style, expected) -> None:
    base = f"/p/{TOKEN}/canary" if style == "cronitor" else f"/api/push/{TOKEN}"
    monkeypatch.setenv(
        "CANARY_HEARTBEAT_URL",
        http_receiver.url(base + ("?status=up&msg=OK&ping=" if style == "uptime_kuma" else "")),
    )
    http_receiver.default_status = 200
    if style == "uptime_kuma":
        http_receiver.script((200, b'{"ok":true}'))
    path = _project(tmp_path, f"heartbeat: {{style: {style}}}\n")
    result = run_cli(capsys, "run", "-q", "--config", str(path))
    assert result.code == 0 and "heartbeat" not in result.err, result.err
    got = http_receiver.received()
    key = "state" if style == "cronitor" else "status"
    assert [(r.method, _query(r)[key][0]) for r in got] == expected
    assert all(_path(r) == base for r in got)
    message = _query(got[-1])["message" if style == "cronitor" else "msg"][0]
    assert "exit 0" in message and "pass 2" in message
    if style == "uptime_kuma":
        assert "ping=" not in urlsplit(got[0].path).query and _query(got[0])["status"] == [
            "up"
        ]  # copied ones dropped


def test_fail_pings_per_service() -> None:
    url = f"https://hc.example/{TOKEN}"
    assert build_ping("healthchecks", url, "fail", "x", "rid-1").url == f"{url}/fail?rid=rid-1"
    assert "state=fail" in build_ping("cronitor", url, "fail", "x", "r").url
    assert "status=down" in build_ping("uptime_kuma", url + "?status=up&msg=OK", "fail", "x", "r").url
    assert "status=up" not in build_ping("uptime_kuma", url + "?status=up&msg=OK", "fail", "x", "r").url
    assert build_ping("uptime_kuma", url, "start", "x", "r") is None
    assert redact(f"https://hc-ping.com/{TOKEN}/start?rid=1") == "https://hc-ping.com/…"
    assert TOKEN not in repr(Heartbeat(url, warn=print))


def test_daemon_job_pings(tmp_path, capsys, http_receiver, ping_url) -> None:
    path = write_project(
        tmp_path, SIM_CONFIG + 'heartbeat: {}\nschedule: {cron: "0 6 * * *", timezone: UTC}\n'
    )
    assert serve(str(path), once=True) == 0
    got = http_receiver.received()
    assert [_path(r) for r in got] == [f"/ping/{TOKEN}/start", f"/ping/{TOKEN}"]
    _no_token(capsys.readouterr().out)


def test_daemon_job_that_fails_pings_fail(tmp_path, capsys, http_receiver, ping_url) -> None:
    path = write_project(
        tmp_path, SIM_CONFIG + 'heartbeat: {}\nschedule: {cron: "0 6 * * *", timezone: UTC}\n'
    )
    (tmp_path / "canary.db").mkdir()
    assert serve(str(path), once=True) == 74
    assert [_path(r) for r in http_receiver.received()] == [f"/ping/{TOKEN}/fail"]


def test_heartbeat_config_is_checked(tmp_path) -> None:
    from canary.config.load import load_config
    from canary.errors import FileError

    path = _project(tmp_path, "heartbeat: {style: nagios}\n")
    with pytest.raises(FileError) as err:
        load_config(path)
    assert err.value.field == "heartbeat.style" and "\n" not in err.value.message
    assert HttpReceiver  # the receivers module is the one the fixtures come from


def test_daemon_stopped_mid_run_pings_fail(tmp_path, http_receiver) -> None:
    """SIGTERM lands mid-run: the cancelled job still says /fail (interrupted), after /start."""
    import os

    from tests.test_schedule import SCHEDULE, SLOW, Daemon, _wait_for_a_stored_sample

    path = write_project(tmp_path, SLOW + "heartbeat: {}\n" + SCHEDULE)
    env = {**os.environ, "CANARY_HEARTBEAT_URL": http_receiver.url(f"/ping/{TOKEN}")}
    daemon = Daemon(path, env=env)
    daemon.wait_for("job_started")
    _wait_for_a_stored_sample(tmp_path)
    assert daemon.stop() == 0
    assert "job_cancelled" in [e["event"] for e in daemon.events]
    got = http_receiver.received()
    assert [_path(r) for r in got] == [f"/ping/{TOKEN}/start", f"/ping/{TOKEN}/fail"]
    assert "exit 130" in got[1].body.decode() and "interrupted" in got[1].body.decode()


def test_an_unset_alert_secret_pings_fail(tmp_path, capsys, monkeypatch, http_receiver, ping_url) -> None:
    monkeypatch.delenv("CANARY_TEST_SLACK", raising=False)
    path = _project(tmp_path, "heartbeat: {}\nalerts: {slack: {webhook_url_env: CANARY_TEST_SLACK}}\n")
    result = run_cli(capsys, "run", "-q", "--config", str(path))
    assert result.code == 78 and "CANARY_TEST_SLACK" in result.err
    got = http_receiver.received()
    assert [_path(r) for r in got] == [f"/ping/{TOKEN}/fail"]
    assert "exit 78" in got[0].body.decode() and "CANARY_TEST_SLACK" in got[0].body.decode()
