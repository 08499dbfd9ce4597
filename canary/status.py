"""`canary status`: is the canary itself healthy? One screen an operator reads before digging in.

It answers the questions a stopped or crashed daemon raises (when did it last run, did that run
finish, is one stuck as `running`, when is the next one) next to the store's own state (schema,
size, alerts, the outbox), without running or judging anything."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from canary.store.schema import HEAD_REVISION, metadata, runs, samples

if TYPE_CHECKING:
    from canary.config.load import Project
    from canary.store import Store
    from canary.store.alerting import AlertRow
    from canary.store.rows import RunRow

NOT_SCHEDULED = "not scheduled (see `canary schedule --print-cron`)"
FAILED_NOTIFICATIONS_SHOWN = timedelta(days=7)  # undeliverable notifications older than this drop off


@dataclass(frozen=True)
class RunInfo:
    """A run row plus whether its process still exists (None: on another host, cannot tell)."""

    id: str
    day: date
    status: str
    started_at: datetime
    finished_at: datetime | None
    n_planned: int
    n_done: int
    host: str
    pid: int
    process_alive: bool | None


@dataclass(frozen=True)
class AlertInfo:
    model_id: str
    scope: str
    signal: str
    opened_day: date
    notify_count: int
    summary: str


@dataclass(frozen=True)
class UnmonitoredInfo:
    """A model whose newest run could not use it (key variable unset, refused by the service)."""

    model_id: str
    state: str  # setup | rejected | partial (canary.store.modelstatus)
    day: date
    reason: str
    skipped: int


@dataclass(frozen=True)
class Status:
    now: datetime
    store: str  # display URL, never with a password
    schema_revision: str | None
    head_revision: str
    db_size_bytes: int | None
    last_run: RunInfo | None
    running: tuple[RunInfo, ...]
    next_run: datetime | None
    schedule_note: str  # how the next run was found, or why there is none
    open_alerts: tuple[AlertInfo, ...]
    notifications_queued: int
    samples_total: int
    samples_today: int
    unmonitored: tuple[UnmonitoredInfo, ...] = ()
    # series of the last run's day that cannot be judged yet: "drifty quality on all canaries:
    # not judged yet: 3 of 14 baseline days" (a quiet status is not an "all clear" for them)
    not_judged: tuple[str, ...] = ()
    # undeliverable notifications, newest first: (channel, queued at, why)
    notifications_failed: tuple[tuple[str, datetime, str], ...] = ()

    @property
    def schema_ok(self) -> bool:
        return self.schema_revision == self.head_revision

    @property
    def last_run_age(self) -> timedelta | None:
        if self.last_run is None:
            return None
        return self.now - (self.last_run.finished_at or self.last_run.started_at)


# --------------------------------------------------------------------------- collecting


def collect_status(project: Project, store: Store, *, now: datetime | None = None) -> Status:
    """Read everything `canary status` shows. Works on a store whose schema is not this code's
    (open it with check=False): then only the revision and size are read, since the tables may
    not be the ones this code expects."""
    from canary.store import alerting

    now = (now or datetime.now(UTC)).astimezone(UTC)
    revision = store.schema_revision()
    size = database_size(store)
    next_run, note = next_scheduled_run(project, now)
    if revision != HEAD_REVISION:
        return Status(
            now, store.display_url, revision, HEAD_REVISION, size, None, (), next_run, note, (), 0, 0, 0
        )
    last = store.last_run()
    with store.reading() as conn:
        running_rows = (
            conn.execute(sa.select(runs).where(runs.c.status == "running").order_by(runs.c.started_at))
            .mappings()
            .all()
        )
        total = conn.execute(sa.select(sa.func.count()).select_from(samples)).scalar_one()
        today = conn.execute(
            sa.select(sa.func.count()).select_from(samples).where(samples.c.day == now.date())
        ).scalar_one()
        unfinished = [r["id"] for r in running_rows]  # their n_done was never written: count
        unfinished += [last.id] if last is not None and last.status != "finished" else []
        stored = (
            dict(
                conn.execute(
                    sa.select(samples.c.run_id, sa.func.count())
                    .where(samples.c.run_id.in_(unfinished))
                    .group_by(samples.c.run_id)
                ).all()
            )
            if unfinished
            else {}
        )
    from canary.store.rows import run_from_row

    firing = alerting.list_alerts(store)
    queued = alerting.queued(store)
    unmonitored = _unmonitored(project, store)
    not_judged: tuple[str, ...] = ()
    if last is not None:
        from canary.check import findings_for, not_judged_lines

        not_judged = tuple(not_judged_lines(findings_for(project, store, last.day, now)))
    undeliverable = alerting.failed(store, limit=20, since=now - FAILED_NOTIFICATIONS_SHOWN)
    return Status(
        now=now,
        store=store.display_url,
        schema_revision=revision,
        head_revision=HEAD_REVISION,
        db_size_bytes=size,
        last_run=_run_info(last, stored) if last is not None else None,
        running=tuple(_run_info(run_from_row(r), stored) for r in running_rows),
        next_run=next_run,
        schedule_note=note,
        open_alerts=tuple(_alert_info(a) for a in sorted(firing, key=lambda a: a.key)),
        notifications_queued=len(queued),
        samples_total=int(total),
        samples_today=int(today),
        unmonitored=unmonitored,
        not_judged=not_judged,
        notifications_failed=tuple((r.channel, r.created_at, r.last_error or "") for r in undeliverable),
    )


def _unmonitored(project: Project, store: Store) -> tuple[UnmonitoredInfo, ...]:
    """Models whose newest recorded run found them unusable: shown even before a check has run."""
    from canary.store.modelstatus import latest

    states = latest(store, [m.id for m in project.config.models], up_to=date.max)
    return tuple(
        UnmonitoredInfo(s.model_id, s.state, s.day, s.reason, s.skipped)
        for m in project.config.models
        if (s := states.get(m.id)) is not None and not s.ok
    )


def _run_info(run: RunRow, stored: dict[str, int]) -> RunInfo:
    """A run that did not finish (crashed, killed, still going) never wrote its n_done: count
    the samples it stored instead, so a crash shows 37/40 and not 0/40."""
    done = run.n_done if run.status == "finished" else max(run.n_done, int(stored.get(run.id, 0)))
    return RunInfo(
        run.id,
        run.day,
        run.status,
        run.started_at,
        run.finished_at,
        run.n_planned,
        done,
        run.host,
        run.pid,
        _alive(run.host, run.pid) if run.status == "running" else None,
    )


def _alive(host: str, pid: int) -> bool | None:
    """Whether a run's process still exists; only knowable on the host that started it."""
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return None
    return True


def _alert_info(a: AlertRow) -> AlertInfo:
    return AlertInfo(a.model_id, a.scope, a.signal, a.opened_day, a.notify_count, a.summary)


def next_scheduled_run(project: Project, now: datetime) -> tuple[datetime | None, str]:
    """The next run from the project's `schedule:` config, if it has one and this canary
    knows how to read it (canary.schedule); otherwise why there is none."""
    schedule = getattr(project.config, "schedule", None)
    if schedule is None:
        return None, NOT_SCHEDULED
    try:
        from canary.schedule import next_run_times
    except ImportError:
        return None, NOT_SCHEDULED
    try:
        times = list(next_run_times(schedule, now, count=1))
    except (TypeError, ValueError) as exc:
        return None, f"schedule unreadable: {exc}"
    if not times:
        return None, "schedule has no future run"
    exprs = getattr(schedule, "expressions", None) or []
    where = (
        f"cron `{'`, `'.join(exprs)}` in {getattr(schedule, 'timezone', 'UTC')}" if exprs else "canary.yaml"
    )
    return times[0].astimezone(UTC), f"{where} (canary.yaml `schedule:`)"


def database_size(store: Store) -> int | None:
    """Bytes the store takes: the SQLite file and its WAL, or canary's own tables on
    PostgreSQL (not the whole database, which other applications and schemas may share)."""
    target = store.target
    if target.dialect == "sqlite":
        path = target.path
        if path is None:
            return None
        return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())
    names = [*metadata.tables, "alembic_version"]
    parts = " + ".join(f"coalesce(pg_total_relation_size(to_regclass(:t{i})), 0)" for i in range(len(names)))
    with store.reading() as conn:
        value = conn.execute(
            sa.text(f"SELECT {parts}"), {f"t{i}": n for i, n in enumerate(names)}
        ).scalar_one()
    return int(value)


# --------------------------------------------------------------------------- rendering


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 90:
        text = f"{seconds} s"
    elif seconds < 90 * 60:
        text = f"{seconds // 60} min"
    elif seconds < 48 * 3600:
        text = f"{seconds / 3600:.1f} h"
    else:
        text = f"{seconds / 86400:.1f} days"
    return f"in {text}" if future else f"{text} ago"


def _size(n: int | None) -> str:
    if n is None:
        return "size unknown"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _run_line(run: RunInfo, now: datetime) -> str:
    text = f"{run.id[:12]} day {run.day} {run.status}, {run.n_done}/{run.n_planned} samples, started {_when(run.started_at)}"
    if run.finished_at is not None:
        took = (run.finished_at - run.started_at).total_seconds()
        text += f", took {took:.1f} s, finished {_ago(now - run.finished_at)}"
    else:
        text += f" ({_ago(now - run.started_at)})"
    if run.status == "running":
        text += f" on {run.host} pid {run.pid}"
        if run.process_alive is False:
            text += " - process gone: crashed (the next run fills its missing samples)"
    return text


def render_status(status: Status) -> str:
    """A few aligned lines for a person; every line starts with its topic."""
    lines: list[tuple[str, str]] = [("store", f"{status.store} ({_size(status.db_size_bytes)})")]
    if status.schema_ok:
        lines.append(("schema", f"{status.schema_revision} (up to date)"))
    else:
        have = status.schema_revision or "none"
        lines.append(("schema", f"{have}, this canary needs {status.head_revision}: run `canary db upgrade`"))
    if status.schema_ok:
        lines.append(
            ("last run", _run_line(status.last_run, status.now) if status.last_run else "no runs yet")
        )
        if status.running:
            for i, run in enumerate(status.running):
                lines.append(("running" if i == 0 else "", _run_line(run, status.now)))
        else:
            lines.append(("running", "none"))
    if status.next_run is not None:
        lines.append(
            (
                "next run",
                f"{_when(status.next_run)} ({_ago(status.now - status.next_run)}), {status.schedule_note}",
            )
        )
    else:
        lines.append(("next run", status.schedule_note))
    if status.schema_ok:
        lines.append(("alerts", f"{len(status.open_alerts)} firing" if status.open_alerts else "none firing"))
        for a in status.open_alerts:
            lines.append(("", f"{a.model_id} {a.signal} ({a.scope}) since {a.opened_day}: {a.summary}"))
        if status.unmonitored:
            lines.append(("models", f"{len(status.unmonitored)} cannot be monitored"))
            for u in status.unmonitored:
                skipped = f", {u.skipped} samples skipped" if u.skipped else ""
                lines.append(("", f"{u.model_id} {u.state} on {u.day}{skipped}: {u.reason}"))
        for i, line in enumerate(status.not_judged):
            lines.append(("not judged" if i == 0 else "", line))
        failed = f", {len(status.notifications_failed)} failed" if status.notifications_failed else ""
        lines.append(("notifications", f"{status.notifications_queued} queued{failed}"))
        for channel, at, why in status.notifications_failed[:5]:
            lines.append(("", f"failed via {channel} (queued {_when(at)}): {why}"))
        lines.append(
            ("samples", f"{status.samples_total} total, {status.samples_today} today ({status.now.date()})")
        )
    width = max(len(topic) for topic, _ in lines)
    return "\n".join(f"{topic:<{width}}  {text}".rstrip() for topic, text in lines)


def _iso(value: datetime | date | None) -> str | None:
    return None if value is None else value.isoformat()


def _run_json(run: RunInfo | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.id,
        "day": _iso(run.day),
        "status": run.status,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "n_planned": run.n_planned,
        "n_done": run.n_done,
        "host": run.host,
        "pid": run.pid,
        "process_alive": run.process_alive,
    }


def status_json(status: Status) -> dict[str, Any]:
    """The same facts for a monitor; stable keys, ISO 8601 times, ages in seconds."""
    age = status.last_run_age
    return {
        "now": _iso(status.now),
        "store": status.store,
        "schema": {"revision": status.schema_revision, "head": status.head_revision, "ok": status.schema_ok},
        "db_size_bytes": status.db_size_bytes,
        "last_run": _run_json(status.last_run),
        "last_run_age_s": None if age is None else round(age.total_seconds(), 3),
        "running": [_run_json(r) for r in status.running],
        "next_run": _iso(status.next_run),
        "schedule": status.schedule_note,
        "alerts_firing": len(status.open_alerts),
        "alerts": [
            {
                "model": a.model_id,
                "scope": a.scope,
                "signal": a.signal,
                "opened_day": _iso(a.opened_day),
                "notify_count": a.notify_count,
                "summary": a.summary,
            }
            for a in status.open_alerts
        ],
        "unmonitored": [
            {
                "model": u.model_id,
                "state": u.state,
                "day": _iso(u.day),
                "reason": u.reason,
                "skipped": u.skipped,
            }
            for u in status.unmonitored
        ],
        "not_judged": list(status.not_judged),
        "notifications_queued": status.notifications_queued,
        "notifications_failed": [
            {"channel": c, "queued_at": _iso(at), "error": why} for c, at, why in status.notifications_failed
        ],
        "samples": {"total": status.samples_total, "today": status.samples_today},
    }


def print_status(project: Project, *, as_json: bool, now: datetime | None = None) -> str:
    """What the CLI prints: opens the store without migrating or refusing an old schema, so
    status still answers when the schema is behind (that is one of the things it reports)."""
    import json

    from canary.errors import CanaryError
    from canary.store import Store
    from canary.store.engine import parse_url

    target = parse_url(project.store_url, project.root)
    if target.path is not None and not target.path.exists():
        raise CanaryError(f"no database at {target.where} yet: run `canary run` first", exit_code=66)
    store = Store.open(project.store_url, base_dir=project.root, check=False)
    try:
        status = collect_status(project, store, now=now)
    finally:
        store.close()
    if as_json:
        return json.dumps(status_json(status), indent=2, ensure_ascii=False)
    return render_status(status)
