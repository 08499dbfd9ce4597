"""`canary schedule`: config validation, next run times, the daemon (in-process and as a real
process stopped by SIGTERM), the cron -> OnCalendar converter and the systemd/cron recipes."""

from __future__ import annotations

import configparser
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import closing, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from canary.config.load import load_config
from canary.config.models import ScheduleConfig
from canary.errors import FileError, SetupError
from canary.schedule import cron_line, next_run_times, serve, systemd_units
from canary.schedule.cron import CronError, on_calendar, parse_cron
from canary.store import Store
from tests.projects import SIM_CONFIG, write_project

REPO = Path(__file__).resolve().parent.parent
SCHEDULE = 'schedule: {cron: "0 6 * * *", timezone: UTC}\n'


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("block", "line", "field", "problem"),
    [
        (
            'schedule:\n  timezone: UTC\n  cron: "61 6 * * *"\n',
            3,
            "schedule.cron",
            "minute: 61 is out of range 0-59",
        ),
        ('schedule:\n  cron: ["0 6 * * *", "0 6 * *"]\n', 2, "schedule.cron", "4 fields; expected 5"),
        ('schedule:\n  cron: "0 6 L * *"\n', 2, "schedule.cron", "not classic cron"),
        (
            'schedule:\n  cron: "0 6 * * *"\n  timezone: Europe/Berln\n',
            3,
            "schedule.timezone",
            "unknown timezone `Europe/Berln`",
        ),
        ('schedule:\n  cron: "0 6 * * *"\n  jitter: 5\n', 3, "schedule.jitter", "unknown key `jitter`"),
    ],
)
def test_bad_schedule_is_one_line_file_error(tmp_path, block, line, field, problem) -> None:
    path = write_project(tmp_path, SIM_CONFIG + block)
    with pytest.raises(FileError) as err:
        load_config(path)
    assert err.value.line == SIM_CONFIG.count("\n") + line and err.value.field == field
    assert problem in err.value.message and "\n" not in err.value.message


def test_schedule_accepts_a_string_or_a_list(tmp_path) -> None:
    path = write_project(
        tmp_path, SIM_CONFIG + 'schedule: {cron: ["0 6 * * 1-5", "@daily"], timezone: Asia/Tokyo}\n'
    )
    schedule = load_config(path)[0].schedule
    assert schedule.expressions == ["0 6 * * 1-5", "@daily"] and schedule.misfire_grace_hours == 6
    assert ScheduleConfig(cron="0 6 * * *").expressions == ["0 6 * * *"]


# --------------------------------------------------------------------------- next run times


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_next_run_times_across_a_dst_change() -> None:
    # Europe/Berlin springs forward on 2024-03-31: 06:00 local is 05:00 UTC before, 04:00 UTC after.
    schedule = ScheduleConfig(cron="0 6 * * *", timezone="Europe/Berlin")
    runs = next_run_times(schedule, _utc(2024, 3, 30, 4, 0), count=3)
    assert [r.astimezone(UTC) for r in runs] == [
        _utc(2024, 3, 30, 5),
        _utc(2024, 3, 31, 4),
        _utc(2024, 4, 1, 4),
    ]
    assert runs[0].tzinfo is not None and runs[0].hour == 6


def test_next_run_times_is_strictly_after_now_and_uses_cron_weekdays() -> None:
    # cron 1-5 is Monday..Friday (APScheduler's own numbering would make it Tuesday..Saturday)
    schedule = ScheduleConfig(cron="0 6 * * 1-5", timezone="UTC")
    friday_six = _utc(2024, 3, 29, 6)
    assert next_run_times(schedule, friday_six, count=2) == [_utc(2024, 4, 1, 6), _utc(2024, 4, 2, 6)]


def test_next_run_times_day_of_month_or_day_of_week() -> None:
    # both day fields restricted: cron runs on the 1st OR on Sundays
    schedule = ScheduleConfig(cron=["30 12 1 * 0", "0 6 * * 6"], timezone="UTC")
    runs = next_run_times(schedule, _utc(2024, 3, 29, 12), count=4)
    assert runs == [
        _utc(2024, 3, 30, 6),
        _utc(2024, 3, 31, 12, 30),
        _utc(2024, 4, 1, 12, 30),
        _utc(2024, 4, 6, 6),
    ]


# --------------------------------------------------------------------------- cron -> OnCalendar


CALENDARS = [
    ("0 6 * * *", ["*-*-* 06:00:00 UTC"]),
    ("*/15 * * * *", ["*-*-* *:00/15:00 UTC"]),
    ("5,35 8-18 * * 1-5", ["Mon..Fri *-*-* 08..18:05,35:00 UTC"]),
    ("0 0 1 1 *", ["*-01-01 00:00:00 UTC"]),
    ("@weekly", ["Sun *-*-* 00:00:00 UTC"]),
    ("0 6 * * 0,6", ["Sat..Sun *-*-* 06:00:00 UTC"]),
    ("0 6 * * 7", ["Sun *-*-* 06:00:00 UTC"]),
    ("0 12 * jan-mar mon,wed", ["Mon,Wed *-01..03-* 12:00:00 UTC"]),
    ("0 6 1-7 * 1", ["*-*-01..07 06:00:00 UTC", "Mon *-*-* 06:00:00 UTC"]),
    ("0 */6 */2 * *", ["*-*-01/2 00/6:00:00 UTC"]),
    ("10/20 3 * * *", ["*-*-* 03:10/20:00 UTC"]),
]


@pytest.mark.parametrize(("expr", "expected"), CALENDARS)
def test_cron_to_on_calendar(expr, expected) -> None:
    assert on_calendar(parse_cron(expr), "UTC") == expected


@pytest.mark.parametrize(
    "expr",
    [
        "0 6 * * * *",
        "0 25 * * *",
        "0 6 ? * *",
        "0 6 * * 1#2",
        "0 6 5-1 * *",
        "*/0 * * * *",
        "@reboot",
        "x 6 * * *",
        "",
    ],
)
def test_cron_it_cannot_run_is_a_clear_error(expr) -> None:
    with pytest.raises(CronError):
        parse_cron(expr)


def _systemd_analyze() -> str | None:
    path = shutil.which("systemd-analyze")
    if path is None:
        return None
    probe = subprocess.run(
        [path, "calendar", "--base-time=2024-01-01 00:00:00 UTC", "*-*-* 06:00:00 UTC"],
        capture_output=True,
        text=True,
    )
    return path if probe.returncode == 0 else None


@pytest.mark.parametrize(
    ("expr", "tz"),
    [(e, "UTC") for e, _ in CALENDARS]
    + [
        ("0 6 * * 1-5", "Europe/Berlin"),
        ("30 2 * * *", "America/New_York"),
        ("0 6 1-7 * 1", "Asia/Tokyo"),
    ],
)
def test_on_calendar_fires_when_the_daemon_does(expr, tz) -> None:
    """systemd's own calendar evaluation agrees with next_run_times (the daemon's trigger)."""
    tool = _systemd_analyze()
    if tool is None:
        pytest.skip("systemd-analyze calendar --base-time is not available here")
    base = _utc(2024, 3, 28, 13, 7)
    schedule = ScheduleConfig(cron=expr, timezone=tz)
    expected = [t.astimezone(UTC) for t in next_run_times(schedule, base, count=6)]
    seen: set[datetime] = set()
    for calendar in on_calendar(parse_cron(expr), tz):
        out = subprocess.run(
            [tool, "calendar", "--iterations=6", f"--base-time={base:%Y-%m-%d %H:%M:%S} UTC", calendar],
            capture_output=True,
            text=True,
            env={**os.environ, "TZ": "UTC"},
            check=True,
        )
        for line in out.stdout.splitlines():
            if "Next elapse:" in line or "Iter. #" in line:
                stamp = " ".join(line.split(":", 1)[1].split()[1:3])
                seen.add(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC))
    assert sorted(seen)[:6] == expected


# --------------------------------------------------------------------------- recipes


def _units(
    tmp_path, config=SIM_CONFIG + 'schedule: {cron: ["0 6 * * 1-5", "30 7 1 * 0"], timezone: Europe/Berlin}\n'
):
    return write_project(tmp_path / "proj", config)


def test_systemd_units_shape(tmp_path) -> None:
    config = (
        SIM_CONFIG.replace(
            "  - id: sim-o",
            "  - id: real\n    provider: anthropic\n    model: m\n"
            "    api_key_env: MY_SECRET_KEY\n  - id: sim-o",
        )
        + SCHEDULE
    )
    path = write_project(tmp_path / "proj", config)
    os.environ["MY_SECRET_KEY"] = "sk-do-not-print-me"
    try:
        units = systemd_units(path, user="canary", python=sys.executable)
    finally:
        del os.environ["MY_SECRET_KEY"]
    assert set(units) == {"canary.service", "canary.timer", "canary-scheduler.service"}
    assert not any("sk-do-not-print-me" in text for text in units.values())
    parsed = {}
    for name, text in units.items():
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # keys are case-sensitive
        parser.read_string(text)
        parsed[name] = parser
    service, timer, daemon = (
        parsed["canary.service"],
        parsed["canary.timer"],
        parsed["canary-scheduler.service"],
    )
    assert service["Service"]["Type"] == "oneshot" and service["Service"]["User"] == "canary"
    assert service["Service"]["WorkingDirectory"] == str(path.parent)
    assert service["Service"]["EnvironmentFile"] == "-/etc/canary/env"
    assert "#   MY_SECRET_KEY=..." in units["canary.service"]
    execs = [
        line.split("=", 1)[1]
        for line in units["canary.service"].splitlines()
        if line.startswith("ExecStart=")
    ]
    assert len(execs) == 2 and all(Path(e.split()[0]).is_absolute() for e in execs)
    assert " run --config " in execs[0] and " report --config " in execs[1]
    assert timer["Timer"]["OnCalendar"] == "*-*-* 06:00:00 UTC"
    assert timer["Timer"]["Persistent"] == "true" and timer["Timer"]["Unit"] == "canary.service"
    assert timer["Install"]["WantedBy"] == "timers.target" and timer["Timer"]["RandomizedDelaySec"]
    assert daemon["Service"]["Restart"] == "on-failure" and daemon["Service"]["KillSignal"] == "SIGTERM"
    assert " schedule --config " in daemon["Service"]["ExecStart"]


def test_systemd_units_pass_systemd_analyze_verify(tmp_path) -> None:
    units = systemd_units(_units(tmp_path))
    assert units["canary.timer"].count("OnCalendar=") == 3  # Mon..Fri, the 1st, Sundays
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (configparser checks above still ran)")
    folder = tmp_path / "units"
    folder.mkdir()
    for name, text in units.items():
        (folder / name).write_text(text)
    done = subprocess.run([tool, "verify", *(str(folder / n) for n in units)], capture_output=True, text=True)
    # verify exits 0 on some problems (a bad OnCalendar is "ignoring"): any complaint fails the test
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


def test_cron_line(tmp_path) -> None:
    path = _units(tmp_path)
    text = cron_line(path, machine_tz="Etc/UTC")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines[0] == "CRON_TZ=Europe/Berlin"
    assert lines[1].startswith("0 6 * * 1-5 cd ") and lines[2].startswith("30 7 1 * 0 cd ")
    assert all(
        "flock -n /tmp/canary-" in line and " run --config " in line and " report --config " in line
        for line in lines[1:]
    )
    assert "CRON_TZ" not in cron_line(path, machine_tz="Europe/Berlin")


def test_recipes_need_a_schedule(tmp_path) -> None:
    path = write_project(tmp_path, SIM_CONFIG)
    with pytest.raises(SetupError, match="no `schedule:` block"):
        cron_line(path)


# --------------------------------------------------------------------------- serve, in process


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_serve_once_runs_checks_and_writes_the_report(tmp_path, capsys, backend, request) -> None:
    config = SIM_CONFIG + SCHEDULE
    if backend == "postgres":
        pg_url = request.getfixturevalue("pg_url")
        config = config.replace("store: sqlite:///canary.db", f"store: {pg_url}")
        Store.open(pg_url, migrate=True).close()  # a shared database is upgraded deliberately
    path = write_project(tmp_path, config)
    assert serve(str(path), once=True) == 0
    events = _json_lines(capsys.readouterr().out)
    assert [e["event"] for e in events] == ["job_started", "job_finished"]
    assert all({"ts", "level", "event"} <= set(e) for e in events)
    finished = events[-1]
    assert finished["planned"] == 2 and finished["outcomes"] == {"pass": 2} and finished["firing"] == 0
    assert (tmp_path / "reports" / "index.html").is_file() and finished["report"].endswith("index.html")
    with Store.open(config.split("\n")[0].split(": ", 1)[1], base_dir=tmp_path) as store:
        run = store.last_run()
        assert run.status == "finished" and run.n_done == 2
        assert len(store.samples(day=run.day)) == 2


def test_serve_once_logs_a_broken_project_and_returns_its_code(tmp_path, capsys) -> None:
    path = write_project(tmp_path, SIM_CONFIG + SCHEDULE)
    (tmp_path / "prompts" / "bad.yaml").write_text("id: x\nprompt: hi\nscorers: []\n")
    assert serve(str(tmp_path), once=True) == 65
    failed = _json_lines(capsys.readouterr().out)[-1]
    assert failed["event"] == "job_failed" and failed["level"] == "error" and "bad.yaml:3" in failed["error"]
    assert path.exists()


def test_serve_without_a_schedule_is_a_setup_error(tmp_path) -> None:
    write_project(tmp_path, SIM_CONFIG)
    with pytest.raises(SetupError, match="no `schedule:` block"):
        serve(str(tmp_path))


# --------------------------------------------------------------------------- serve, a real process

DAEMON = """\
import sys
from datetime import datetime, timezone
from apscheduler.triggers.date import DateTrigger
from canary.schedule import serve
trigger = DateTrigger(run_date=datetime.now(timezone.utc))  # due at once (within the misfire grace)
raise SystemExit(serve(sys.argv[1], trigger=trigger))
"""


class Daemon:
    """A `serve()` process whose JSON log lines are read as they come."""

    def __init__(self, config: Path, script: str = DAEMON, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, str(config)],
            cwd=REPO,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.events: list[dict] = []
        # A reader thread, not select() on the pipe: readline() buffers several lines at once, and
        # select() then sees an empty pipe while the wanted line already sits in Python's buffer.
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, event: str, deadline_s: float = 60) -> dict:
        # the deadline only keeps a broken daemon from hanging the suite; nothing asserts on time
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                line = self._lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.events.append(json.loads(line))
            if self.events[-1]["event"] == event:
                return self.events[-1]
        self.proc.kill()
        raise AssertionError(f"no {event}: {self.events} {self.proc.stderr.read()}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        while (line := self._lines.get(timeout=10)) is not None:  # the reader ends at EOF
            self.events.append(json.loads(line))
        return code


def test_daemon_runs_a_job_and_stops_on_sigterm(tmp_path) -> None:
    path = write_project(tmp_path, SIM_CONFIG + SCHEDULE)
    daemon = Daemon(path)
    daemon.wait_for("scheduler_started")
    finished = daemon.wait_for("job_finished")
    daemon.wait_for("next_run_at")
    assert daemon.stop() == 0
    assert [e["event"] for e in daemon.events][-3:] == ["stop_requested", "stopping", "stopped"]
    with Store.open("sqlite:///canary.db", base_dir=tmp_path) as store:
        run = store.last_run()
        assert run.id == finished["run"] and run.status == "finished"
        assert len(store.samples(run_id=run.id)) == finished["planned"] == 2
    assert (tmp_path / "reports" / "index.html").is_file()


SLOW = (
    SIM_CONFIG.replace("  samples: 1\n  concurrency: 8", "  samples: 12\n  concurrency: 1")
    .replace("    model: sim-a\n", "    model: sim-a\n    sim: {latency_ms: 300}\n")
    .replace("    model: sim-o\n", "    model: sim-o\n    sim: {latency_ms: 300}\n")
)


def _wait_for_a_stored_sample(root: Path, deadline_s: float = 60) -> None:
    """Block until the daemon's run has committed a sample (a condition, not a duration)."""
    import sqlite3

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with suppress(sqlite3.Error), closing(sqlite3.connect(root / "canary.db")) as conn:
            if conn.execute("select count(*) from samples").fetchone()[0]:
                return
        time.sleep(0.02)
    raise AssertionError("the daemon stored no sample")


def test_sigterm_mid_run_cancels_cleanly(tmp_path) -> None:
    """24 samples at 300 ms, one at a time per model: SIGTERM lands mid-run. The process exits 0,
    the run is marked interrupted, and every stored sample is whole."""
    path = write_project(tmp_path, SLOW + SCHEDULE)
    daemon = Daemon(path)
    daemon.wait_for("job_started")
    _wait_for_a_stored_sample(tmp_path)
    assert daemon.stop() == 0
    names = [e["event"] for e in daemon.events]
    assert "job_cancelled" in names and "job_finished" not in names and names[-1] == "stopped"
    with Store.open("sqlite:///canary.db", base_dir=tmp_path) as store:
        run = store.last_run()
        stored = store.samples(day=run.day)
        assert run.status == "interrupted" and run.n_planned == 24 and 1 <= run.n_done == len(stored) < 24
        for sample in stored:
            assert sample.outcome == "pass" and sample.turns and sample.attempts
    # the next run fills exactly what is missing
    assert serve(str(path), once=True) == 0
    with Store.open("sqlite:///canary.db", base_dir=tmp_path) as store:
        assert len(store.samples(day=store.last_run().day)) == 24


# --------------------------------------------------------------------------- missed slots (issue 8 part 11)

SCHEDULED = """\
import sys
from canary.schedule import serve
raise SystemExit(serve(sys.argv[1]))
"""

MISSED_BY_A_WOKEN_SCHEDULER = """\
import sys
from datetime import datetime, timedelta, timezone
from apscheduler.triggers.date import DateTrigger
from canary.schedule import serve
# A slot 3 h in the past, as a scheduler woken from a suspend finds it: past the 1 h grace.
raise SystemExit(serve(sys.argv[1], trigger=DateTrigger(run_date=datetime.now(timezone.utc) - timedelta(hours=3))))
"""


def test_previous_run_time() -> None:
    from canary.schedule.triggers import previous_run_time

    daily = ScheduleConfig(cron="0 6 * * *", timezone="UTC")
    assert previous_run_time(daily, _utc(2024, 3, 30, 5, 59)) == _utc(2024, 3, 29, 6)
    assert previous_run_time(daily, _utc(2024, 3, 30, 6)) == _utc(2024, 3, 30, 6)  # at the slot: that slot
    weekdays = ScheduleConfig(cron="0 6 * * 1-5", timezone="UTC")
    assert previous_run_time(weekdays, _utc(2024, 3, 31, 12)) == _utc(2024, 3, 29, 6)  # Sunday -> Friday
    yearly = ScheduleConfig(cron="0 0 1 1 *", timezone="Europe/Berlin")
    assert previous_run_time(yearly, _utc(2024, 3, 30)).astimezone(UTC) == _utc(2023, 12, 31, 23)
    assert previous_run_time(ScheduleConfig(cron="*/5 * * * *"), _utc(2024, 3, 30, 6, 7)) == _utc(
        2024, 3, 30, 6, 5
    )


def _slot_hours_ago(hours: int) -> str:
    """A daily cron expression whose newest slot was `hours` hours ago (UTC): a slot the daemon
    missed, whatever the wall clock says when the test runs."""
    slot = datetime.now(UTC) - timedelta(hours=hours)
    return f"{slot.minute} {slot.hour} * * *"


def _backfill(path: Path, days_ago: int) -> str:
    """One completed run recorded `days_ago` days back (its completion counts as that day's end)."""
    day = (datetime.now(UTC) - timedelta(days=days_ago)).date().isoformat()
    done = subprocess.run(
        [sys.executable, "-m", "canary", "run", "-q", "--no-check", "--as-of", day, "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return day


def _webhook(receiver) -> str:
    return f'alerts:\n  log: false\n  webhook: {{url: "{receiver.url("/hook")}"}}\n'


def _gap_hooks(receiver) -> list[dict]:
    return [
        r.json()
        for r in receiver.received()
        if r.path == "/hook" and any(e["signal"] == "gap" for e in r.json()["events"])
    ]


def test_daemon_started_after_a_missed_slot_runs_it_at_once(tmp_path, http_receiver) -> None:
    """The slot was 1 h ago (grace 6 h) and the newest completed run is 3 days old: the daemon
    runs the slot as it starts, and the job's check says the gap once."""
    path = write_project(
        tmp_path,
        SIM_CONFIG + _webhook(http_receiver) + f'schedule: {{cron: "{_slot_hours_ago(1)}", timezone: UTC}}\n',
    )
    last_day = _backfill(path, 3)
    daemon = Daemon(path, SCHEDULED)
    caught = daemon.wait_for("catch_up")
    assert caught["late_h"] >= 0.9 and caught["last_completed"].startswith(
        (datetime.fromisoformat(last_day) + timedelta(days=1)).date().isoformat()
    )
    daemon.wait_for("scheduler_started")
    finished = daemon.wait_for("job_finished")
    gap = [e for e in daemon.events if e["event"] == "gap"]
    assert daemon.stop() == 0
    assert finished["planned"] == 2 and finished["outcomes"] == {"pass": 2}
    with Store.open("sqlite:///canary.db", base_dir=tmp_path) as store:
        assert len(store.samples(day=datetime.fromisoformat(finished["day"]).date())) == 2
    assert len(gap) == 1 and gap[0]["summary"] == f"no completed run since {last_day}: 2 days missed"
    hooks = _gap_hooks(http_receiver)
    assert len(hooks) == 1 and hooks[0]["events"][0]["summary"] == gap[0]["summary"]


def test_daemon_started_past_the_grace_says_the_gap_and_waits(tmp_path, http_receiver) -> None:
    """The slot was 3 h ago, the grace is 1 h: not run now; the gap is logged and notified once,
    by this start, a second start and the next run alike."""
    config = (
        SIM_CONFIG
        + _webhook(http_receiver)
        + f'schedule: {{cron: "{_slot_hours_ago(3)}", timezone: UTC, misfire_grace_hours: 1}}\n'
    )
    path = write_project(tmp_path, config)
    last_day = _backfill(path, 3)
    for start in (1, 2):
        daemon = Daemon(path, SCHEDULED)
        missed = daemon.wait_for("job_missed")
        daemon.wait_for("scheduler_started")
        assert daemon.stop() == 0
        names = [e["event"] for e in daemon.events]
        assert "job_started" not in names and "catch_up" not in names
        assert missed["late_h"] >= 2.9
        assert names.count("gap") == (1 if start == 1 else 0), names
    hooks = _gap_hooks(http_receiver)
    assert len(hooks) == 1
    event = hooks[0]["events"][0]
    assert event["summary"] == f"no completed run since {last_day}: 3 days missed"
    assert "past misfire_grace_hours (1 h)" in event["detail"]
    with Store.open("sqlite:///canary.db", base_dir=tmp_path) as store:
        assert len(store.samples()) == 2  # only the backfill: nothing ran
    # the run that finally comes ends the same gap: not said again
    done = subprocess.run(
        [sys.executable, "-m", "canary", "run", "-q", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert len(_gap_hooks(http_receiver)) == 1 and "monitoring gap" not in done.stderr


def test_daemon_woken_past_the_grace_says_the_gap(tmp_path, http_receiver) -> None:
    """APScheduler's own misfire (a scheduler woken late) goes through the same notice."""
    config = (
        SIM_CONFIG
        + _webhook(http_receiver)
        + 'schedule: {cron: "0 6 * * *", timezone: UTC, misfire_grace_hours: 1}\n'
    )
    path = write_project(tmp_path, config)
    _backfill(path, 2)
    daemon = Daemon(path, MISSED_BY_A_WOKEN_SCHEDULER)
    daemon.wait_for("job_missed")
    gap = daemon.wait_for("gap")
    assert daemon.stop() == 0
    assert "job_started" not in [e["event"] for e in daemon.events]
    assert len(_gap_hooks(http_receiver)) == 1 and gap["days_missed"] == 2


def test_a_stop_signal_landing_inside_a_log_line_does_not_deadlock() -> None:
    """The SIGTERM handler logs on the main thread, which may be inside log() already: the
    daemon once hung there for good (seen when SIGTERM followed `scheduler_started` at once)."""
    code = (
        "import os, signal\nfrom canary.schedule import log as m\n"
        "signal.signal(signal.SIGTERM, lambda *_: m.log('stop_requested'))\n"
        "with m._lock:\n    os.kill(os.getpid(), signal.SIGTERM)\n    m.log('inside')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert [e["event"] for e in _json_lines(done.stdout)] == ["stop_requested", "inside"]
