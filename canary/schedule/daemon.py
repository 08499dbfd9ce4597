"""`canary schedule`: an APScheduler BlockingScheduler that does `canary run` (with its check)
and `canary report` at every time the `schedule:` block names, until SIGTERM or SIGINT.

Each job reloads canary.yaml and prompts/, so edits take effect at the next run without a
restart (a changed `schedule:` reschedules). A failing job is logged and the daemon carries on:
the next run fills what is missing, and the `stale` signal pages if runs keep failing. On a
stop signal no new job starts, the in-flight run is cancelled cleanly (canary.schedule.cancel)
and the process exits 0. Exactly-once per slot is the store's job (unique sample keys), so a
daemon and a manual `canary run` may overlap safely."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from canary.config.load import CONFIG_NAME, find_config
from canary.config.models import ScheduleConfig
from canary.errors import EXIT_FIRING, EXIT_SOFTWARE, CanaryError, SetupError
from canary.schedule.cancel import RunCanceller, cancellable, tapping
from canary.schedule.log import JsonLogHandler, log

JOB_ID = "canary-run"
EXIT_INTERRUPTED = 130
TICK_S = 30.0  # how often the scheduler re-reads the wall clock (see _tick)


def config_path_for(project_path: str | os.PathLike | None) -> Path:
    """A project folder or its canary.yaml (default: CANARY_CONFIG, then ./canary.yaml)."""
    path = find_config(project_path)
    if path.is_dir():
        path = path / CONFIG_NAME
    return path.resolve()


# --------------------------------------------------------------------------- one job


def run_job(config_path: Path, canceller: RunCanceller | None = None) -> tuple[int, Any]:
    """`canary run` + check + `canary report` once; returns (exit code as `canary run` would
    give it, the loaded project or None). Never raises: every failure becomes a log line."""
    from canary.config.load import load_project
    from canary.heartbeat import Heartbeat

    started = time.monotonic()
    log("job_started", config=str(config_path))
    project = None
    heartbeat = Heartbeat(None, warn=_heartbeat_warning)
    try:
        project = load_project(config_path)
        heartbeat = Heartbeat.from_config(project.config.heartbeat, os.environ, warn=_heartbeat_warning)
        code = _run_check_report(project, canceller, started, heartbeat)
    except CanaryError as exc:
        log(
            "job_failed",
            "error",
            error=exc.message,
            exit_code=exc.exit_code,
            duration_s=round(time.monotonic() - started, 3),
        )
        heartbeat.run_failed(exc)
        code = exc.exit_code
    except BaseException as exc:  # a daemon logs and survives; CancelledError is a BaseException
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        if canceller is not None and canceller.cancelled:
            _log_cancelled(project, started)
            heartbeat.run_failed(KeyboardInterrupt())  # stopped: /fail "interrupted"
            return EXIT_INTERRUPTED, project
        log(
            "job_failed",
            "error",
            error=f"{type(exc).__name__}: {exc}",
            exit_code=EXIT_SOFTWARE,
            duration_s=round(time.monotonic() - started, 3),
        )
        heartbeat.run_failed(exc)
        code = EXIT_SOFTWARE
    return code, project


def _heartbeat_warning(line: str) -> None:
    log("heartbeat_failed", "warning", error=line)


def _run_check_report(project: Any, canceller: RunCanceller | None, started: float, heartbeat: Any) -> int:
    from canary.alerts.channels import build_channels
    from canary.check import run_check
    from canary.gap import say_gap
    from canary.pipeline import RunOptions
    from canary.pipeline import run as run_pipeline
    from canary.report import write_report
    from canary.store import Store

    # a bad alert setup (missing secret variable) fails before any model is called, as in `canary run`
    channels = build_channels(project.config.alerts, os.environ, base_dir=project.root)
    if canceller is not None and canceller.cancelled:
        raise _Cancelled
    # A scheduled job that meets a run in progress (a manual one, another host's) waits for it
    # rather than skipping its slot: it then finds only what is still missing.
    report = run_pipeline(project, RunOptions(quiet=True, wait=True), on_start=heartbeat.run_started)
    if canceller is not None and canceller.cancelled:
        raise _Cancelled  # stopping: the check and the report wait for the next run
    with Store.open(project.store_url, base_dir=project.root) as store:
        gap = say_gap(project.config, store, day=report.day, channels=channels)  # the check delivers it
        check = run_check(project, store, as_of=report.day, channels=channels, said_gap=gap is not None)
        index = write_report(project, store, out=project.root / project.config.reports)
    if gap is not None:
        log("gap", "warning", summary=gap.summary, hours=round(gap.hours, 1), days_missed=gap.days_missed)
    outcomes = Counter(s.outcome for s in report.stats.samples)
    for model_id, trouble in sorted(report.trouble.items()):
        log("model_trouble", "warning", model=model_id, error=trouble.message, skipped=trouble.skipped)
    log(
        "job_finished",
        run=report.run_id,
        day=report.day.isoformat(),
        planned=report.planned,
        already=report.already,
        samples=len(report.stats.samples),
        outcomes=dict(sorted(outcomes.items())),
        firing=len(check.firing),
        events=len(check.events),
        sent=len(check.delivery.sent),
        undelivered=len(check.delivery.failed),
        report=str(index),
        duration_s=round(time.monotonic() - started, 3),
    )
    if report.trouble_exit_code is not None:
        code = report.trouble_exit_code  # 78: a model's key variable is unset; 69: a model was refused
    elif outcomes.get("harness_error"):
        code = EXIT_SOFTWARE
    else:
        code = EXIT_FIRING if check.firing else 0
    heartbeat.run_finished(code, report, len(check.firing))
    return code


class _Cancelled(Exception):
    pass


def _log_cancelled(project: Any, started: float) -> None:
    fields: dict[str, Any] = {}
    if project is not None:
        from canary.store import Store

        with suppress(Exception), Store.open(project.store_url, base_dir=project.root) as store:
            last = store.last_run()
            if last is not None and last.status == "interrupted":
                fields = {
                    "run": last.id,
                    "status": last.status,
                    "planned": last.n_planned,
                    "stored": last.n_done,
                }
    log(
        "job_cancelled",
        "warning",
        duration_s=round(time.monotonic() - started, 3),
        **fields,
        note="unfinished samples are left for the next run",
    )


# --------------------------------------------------------------------------- stopping


@contextmanager
def _stop_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT ask for a graceful stop; a second one exits at once (committed samples
    are safe, the run row stays `running` until the next run marks it abandoned)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():
            log("forced_stop", "warning", signal=signal.Signals(signum).name)
            os._exit(EXIT_INTERRUPTED)
        log("stop_requested", signal=signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def _scheduler_logs() -> Iterator[None]:
    logger = logging.getLogger("apscheduler")
    handler = JsonLogHandler(logging.WARNING)
    logger.addHandler(handler)
    old_propagate, logger.propagate = logger.propagate, False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = old_propagate


class _Jobs:
    """The daemon's shared state: the in-flight job's canceller, guarded by a lock."""

    def __init__(self, config_path: Path, stop: threading.Event) -> None:
        self.config_path, self.stop = config_path, stop
        self._lock = threading.Lock()
        self._current: RunCanceller | None = None

    def run_once(self) -> tuple[int, Any]:
        canceller = RunCanceller()
        with self._lock:
            self._current = canceller
        if self.stop.is_set():
            canceller.cancel()
        try:
            with cancellable(canceller):
                return run_job(self.config_path, canceller)
        finally:
            with self._lock:
                self._current = None

    def cancel_current(self) -> None:
        with self._lock:
            current = self._current
        if current is not None:
            current.cancel()


def _watch(stop: threading.Event, finished: threading.Event, on_stop: Callable[[], None]) -> threading.Thread:
    def wait() -> None:
        while not stop.wait(0.2):  # also wakes for `finished`, so the thread never outlives serve()
            if finished.is_set():
                return
        on_stop()

    thread = threading.Thread(target=wait, name="canary-schedule-stop", daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------- serve


def serve(
    project_path: str | os.PathLike | None,
    *,
    once: bool = False,
    stop_event: threading.Event | None = None,
    trigger: Any = None,
) -> int:
    """Run the schedule until SIGTERM/SIGINT or `stop_event`; returns 0 after a graceful stop.

    once=True runs one job now and returns its exit code as `canary run` would (0, 1 firing,
    69, 70, 65/74/78 for setup errors, 130 when stopped): the shape systemd oneshot units and
    tests want. `trigger` (an APScheduler trigger) replaces the project's `schedule:`; tests
    use it to fire within a second. Errors in the project at start-up raise CanaryError."""
    config_path = config_path_for(project_path)
    stop = stop_event or threading.Event()
    jobs = _Jobs(config_path, stop)
    finished = threading.Event()
    with tapping(), _stop_signals(stop), _scheduler_logs():
        if once:
            _watch(stop, finished, jobs.cancel_current)
            try:
                return jobs.run_once()[0]
            finally:
                finished.set()
        try:
            return _serve_forever(config_path, jobs, stop, finished, trigger)
        finally:
            finished.set()


def _serve_forever(
    config_path: Path, jobs: _Jobs, stop: threading.Event, finished: threading.Event, trigger: Any
) -> int:
    from apscheduler.events import EVENT_JOB_MISSED, EVENT_SCHEDULER_START
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.blocking import BlockingScheduler

    from canary.config.load import load_config
    from canary.schedule.triggers import build_trigger

    config, doc = load_config(config_path)
    schedule = config.schedule
    if trigger is None and schedule is None:
        raise SetupError(
            f'{doc.path}: no `schedule:` block (add e.g. `schedule: {{cron: "0 6 * * *", timezone: UTC}}`)'
        )
    grace = (
        schedule.misfire_grace_hours
        if schedule
        else ScheduleConfig.model_fields["misfire_grace_hours"].default
    )
    scheduler = BlockingScheduler(
        timezone=ZoneInfo(schedule.timezone if schedule else "UTC"),
        executors={"default": ThreadPoolExecutor(1)},
        job_defaults={"misfire_grace_time": int(grace * 3600), "coalesce": True, "max_instances": 1},
    )
    current = {"schedule": schedule}

    def next_run_at() -> str | None:
        job = scheduler.get_job(JOB_ID)
        return job.next_run_time.isoformat() if job and job.next_run_time else None

    def job() -> None:
        _code, project = jobs.run_once()
        new = project.config.schedule if project is not None else None
        if trigger is None and project is not None and new != current["schedule"] and not stop.is_set():
            if new is None:
                log("schedule_removed", "warning", note="keeping the previous schedule until restart")
            else:
                scheduler.reschedule_job(JOB_ID, trigger=build_trigger(new))
                current["schedule"] = new
                log("schedule_changed", cron=new.expressions, timezone=new.timezone)
        if not stop.is_set():
            with suppress(Exception):
                log("next_run_at", at=next_run_at())

    def on_start(_event: Any) -> None:
        log(
            "scheduler_started",
            config=str(config_path),
            pid=os.getpid(),
            cron=schedule.expressions if schedule and trigger is None else None,
            timezone=schedule.timezone if schedule else None,
            next_run_at=next_run_at(),
        )
        _watch(stop, finished, shutdown)

    def on_missed(event: Any) -> None:  # woken (suspend, a stalled host) past the grace
        log(
            "job_missed",
            "warning",
            scheduled=str(event.scheduled_run_time),
            note="later than misfire_grace_hours; the next scheduled run fills the day",
        )
        _say_missed(config_path, event.scheduled_run_time)

    def shutdown() -> None:
        log("stopping", note="no new jobs; cancelling the run in flight")
        scheduler.pause()
        jobs.cancel_current()
        scheduler.shutdown(wait=True)

    first_run = _catch_up(config_path, config, schedule) if trigger is None and schedule is not None else None
    scheduler.add_job(
        job,
        trigger or build_trigger(schedule),
        id=JOB_ID,
        name="canary run + report",
        **({"next_run_time": first_run} if first_run else {}),
    )
    scheduler.add_listener(on_start, EVENT_SCHEDULER_START)
    _tick(scheduler, stop, finished)
    scheduler.add_listener(on_missed, EVENT_JOB_MISSED)
    scheduler.start()  # blocks until shutdown() has waited for the job in flight
    log("stopped")
    return 0


# --------------------------------------------------------------------------- missed slots


def _catch_up(
    config_path: Path, config: Any, schedule: ScheduleConfig, now: datetime | None = None
) -> datetime | None:
    """At start: the newest slot of the schedule, if no run has completed since it. Within
    `misfire_grace_hours` it runs at once (the time returned is the job's first run); past it, the
    gap is logged and notified (canary.gap) and the next slot runs as usual. APScheduler cannot do
    this itself: its memory job store forgets the slots of a process that was not running.
    Anything failing here (store down, alert secret unset) is logged; the daemon still starts."""
    from canary.schedule.triggers import previous_run_time

    now = now or datetime.now(UTC)
    slot = previous_run_time(schedule, now)
    if slot is None:
        return None
    try:
        last = _last_completed(config_path, config)
    except Exception as exc:  # the first job will say what is wrong with the store
        log("catch_up_failed", "warning", error=_one_line(exc))
        return None
    if last is not None and last >= slot:
        return None
    late_h = (now - slot).total_seconds() / 3600
    fields = {
        "scheduled": slot.isoformat(),
        "late_h": round(late_h, 2),
        "last_completed": last.isoformat() if last else None,
    }
    if late_h <= schedule.misfire_grace_hours:
        log(
            "catch_up", **fields, note="a slot was missed while the scheduler was not running: running it now"
        )
        return now
    log(
        "job_missed",
        "warning",
        **fields,
        note="later than misfire_grace_hours: not run now; the next scheduled run fills the day",
    )
    _say_missed(config_path, slot, now=now)
    return None


def _last_completed(config_path: Path, config: Any) -> datetime | None:
    from canary.config.load import store_url_of
    from canary.store import Store
    from canary.store.gaps import completed_runs

    with Store.open(store_url_of(config), base_dir=config_path.parent) as store:
        done = completed_runs(store)
    return done[-1].at if done else None


def _say_missed(config_path: Path, slot: datetime, now: datetime | None = None) -> None:
    """Notify the gap a missed slot leaves (once per gap: canary.gap); log what happened."""
    from canary.alerts.channels import build_channels
    from canary.config.load import load_config, store_url_of
    from canary.gap import say_missed_slot
    from canary.store import Store

    try:
        config, _doc = load_config(config_path)
        channels = build_channels(config.alerts, os.environ, base_dir=config_path.parent)
        with Store.open(store_url_of(config), base_dir=config_path.parent) as store:
            gap = say_missed_slot(config, store, slot=slot, channels=channels, now=now)
    except Exception as exc:  # never takes the daemon down; the next run's check says the gap
        log("gap_notice_failed", "warning", error=_one_line(exc))
        return
    if gap is not None:
        log(
            "gap",
            "warning",
            summary=gap.summary,
            hours=round(gap.hours, 1),
            days_missed=gap.days_missed,
            notified=len(channels),
        )


def _one_line(exc: BaseException) -> str:
    return exc.message if isinstance(exc, CanaryError) else type(exc).__name__


def _tick(scheduler: Any, stop: threading.Event, finished: threading.Event) -> threading.Thread:
    """Wake the scheduler every TICK_S. Its sleep is a monotonic wait, which does not advance while
    the machine is suspended: without this, a host that sleeps through 06:00 and wakes at 09:00
    would start the run hours later still. Woken, APScheduler runs a due slot within the grace or
    reports it missed (on_missed)."""

    def tick() -> None:
        while not stop.wait(TICK_S) and not finished.is_set():
            with suppress(Exception):
                scheduler.wakeup()

    thread = threading.Thread(target=tick, name="canary-schedule-tick", daemon=True)
    thread.start()
    return thread
