"""The results store: runs, canaries, samples and their attempts, on SQLite or PostgreSQL.

The unique sample key makes the database the coordinator: a rerun or a second runner
inserting a slot that is already there changes nothing (INSERT .. ON CONFLICT DO NOTHING),
so no in-process bookkeeping can double-count a sample."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

import canary
from canary.errors import StoreError
from canary.records import Attempt, SampleResult
from canary.store import migrate as _migrate
from canary.store.dberrors import guard, is_disconnect
from canary.store.engine import WRITE_OPTION, Target, create_engine, parse_url
from canary.store.rows import (
    RunRow,
    SampleRow,
    attempt_from_row,
    attempt_values,
    run_from_row,
    sample_from_row,
    sample_values,
)
from canary.store.schema import HEAD_REVISION, RUN_STATUSES, SAMPLE_KEY, attempts, canaries, runs, samples
from canary.textsafe import sanitize_sample

FINAL_STATUSES = tuple(s for s in RUN_STATUSES if s != "running")
OPEN_LOCK_WAIT_S = 120.0  # queueing behind another process's first open / schema upgrade
T = TypeVar("T")


def _insert(dialect: str) -> Any:
    """The dialect's INSERT construct, the one that knows ON CONFLICT."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert


class Store:
    """Open with `Store.open(url)`; safe to share between threads (the engine pools connections)."""

    def __init__(self, engine: sa.Engine, target: Target) -> None:
        self.engine = engine
        self.target = target
        self.display_url = target.display_url
        # What open(migrate=...) did: (from, to) when it upgraded, else None.
        self.migrated: tuple[str | None, str] | None = None
        insert = _insert(target.dialect)
        new = insert(samples).on_conflict_do_nothing(index_elements=list(SAMPLE_KEY))
        self._insert_new = new.returning(samples.c.id)
        upsert = insert(samples)
        upsert = upsert.on_conflict_do_update(
            index_elements=list(SAMPLE_KEY),
            set_={c.name: upsert.excluded[c.name] for c in samples.c if c.name not in (*SAMPLE_KEY, "id")},
        )
        self._upsert = upsert.returning(samples.c.id)
        # A retried start_run must not trip over its own first, committed attempt.
        self._insert_run = insert(runs).on_conflict_do_nothing(index_elements=["id"])
        self._insert_canary = insert(canaries).on_conflict_do_nothing(
            index_elements=["canary_id", "canary_hash"]
        )
        self._insert_attempts = attempts.insert()
        self._delete_attempts = attempts.delete().where(attempts.c.sample_id == sa.bindparam("sid"))

    # ----------------------------------------------------------------------- lifecycle

    @classmethod
    def open(
        cls,
        url: str,
        *,
        base_dir: Path | None = None,
        migrate: bool | None = None,
        busy_timeout_s: float | None = None,
        check: bool = True,
    ) -> Store:
        """Connect and make sure the schema is this code's.

        migrate=None upgrades SQLite automatically (a local file, nobody else to ask) and only
        checks PostgreSQL (a shared database is upgraded deliberately: `canary db upgrade`).
        True upgrades either; False only checks. A database ahead of the code is always refused.
        check=False skips the version check (`canary db current` only reports it).
        busy_timeout_s overrides the SQLite lock wait of the URL (`?lock_timeout_s=`, default 5 s)."""
        target = parse_url(url, base_dir)
        engine = create_engine(target, busy_timeout_s=busy_timeout_s)
        store = cls(engine, target)
        try:
            if check:
                with store._first_open_lock():
                    store._check_schema(migrate)
        except BaseException:
            engine.dispose()
            raise
        return store

    def _check_schema(self, migrate: bool | None) -> None:
        current = self.schema_revision()
        if current == HEAD_REVISION:
            return
        if not _migrate.is_known(current):
            raise _migrate.ahead_error(str(current))
        if migrate if migrate is not None else self.target.dialect == "sqlite":
            before, after = self.upgrade()
            # Another process may have upgraded between our check and our lock.
            self.migrated = (before, after) if before != after else None
            return
        raise _migrate.behind_error(current)

    @contextmanager
    def _first_open_lock(self) -> Iterator[None]:
        """Queue concurrent opens of one SQLite file while its schema is checked and, on a new
        file, created: two first opens racing on a fresh database otherwise meet SQLite locks
        that its busy timeout does not cover. The waiter then simply finds the schema at head."""
        path = self.target.path
        if self.target.dialect != "sqlite" or path is None:
            yield
            return
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".open-lock"), "a", encoding="utf-8") as lock:
            deadline = time.monotonic() + OPEN_LOCK_WAIT_S
            while True:  # bounded: a stopped process holding it must not hang every later open
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StoreError(
                            f"another canary has been opening (or upgrading) {self.target.where} for more than "
                            f"{OPEN_LOCK_WAIT_S:g} s; stop it if it hangs, then run again: committed samples are kept"
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def upgrade(self) -> tuple[str | None, str]:
        """Apply pending migrations with Alembic; returns (from revision, to revision)."""
        with guard(self.target):
            return _migrate.upgrade(self.engine, self.target)

    def schema_revision(self) -> str | None:
        with self._read() as conn:
            return _migrate.read_revision(conn)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with guard(self.target), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE)."""
        with guard(self.target), self.engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def _retrying(self, write: Callable[[], T]) -> T:
        """Run an idempotent write transaction, once more if the server dropped the connection
        under it. The pool pings on checkout, so a connection dropped while idle never gets
        here; this covers one dropped mid-transaction. Every caller's write is idempotent
        (ON CONFLICT, or an UPDATE to fixed values), so a commit whose reply was lost is
        harmless to repeat."""
        try:
            return write()
        except StoreError as exc:
            if not is_disconnect(exc):
                raise
        return write()

    def reading(self) -> AbstractContextManager[sa.Connection]:
        """A read transaction, for the query modules (series, alerting) that sit beside Store."""
        return self._read()

    def writing(self) -> AbstractContextManager[sa.Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite), with the store's error translation."""
        return self._write()

    # ----------------------------------------------------------------------- runs

    def start_run(self, *, day: date, model_ids: list[str], n_planned: int) -> str:
        run_id = uuid.uuid4().hex
        values = {
            "id": run_id,
            "day": day,
            "started_at": datetime.now(UTC),
            "finished_at": None,
            "status": "running",
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "canary_version": canary.__version__,
            "model_ids": json.dumps(list(model_ids)),
            "n_planned": n_planned,
            "n_done": 0,
        }

        def write() -> None:
            with self._write() as conn:
                conn.execute(self._insert_run, values)

        self._retrying(write)
        return run_id

    def finish_run(self, run_id: str, *, status: str, n_done: int) -> None:
        if status not in FINAL_STATUSES:
            raise ValueError(f"run status must be one of {', '.join(FINAL_STATUSES)}, not {status!r}")
        stmt = (
            runs.update()
            .where(runs.c.id == run_id)
            .values(status=status, n_done=n_done, finished_at=datetime.now(UTC))
        )

        def write() -> int:
            with self._write() as conn:
                return conn.execute(stmt).rowcount

        if self._retrying(write) != 1:
            raise StoreError(f"no run {run_id} in {self.display_url}")

    def mark_abandoned_runs(self, *, older_than: timedelta | None = None) -> list[str]:
        """Mark `running` runs whose process is gone as `interrupted`; returns their ids.

        A `kill -9`, an OOM kill or a power cut leaves the run row `running` forever. A run is
        abandoned when it ran on this host under a pid that no longer exists, or (for runs of
        other hosts, whose processes cannot be seen from here) when it started more than
        `older_than` ago. A pid reused by an unrelated process keeps its run `running`: the
        safe side, which `older_than` eventually covers. n_done becomes what the run actually
        stored and finished_at its last stored sample (or its start)."""
        host, now = socket.gethostname(), datetime.now(UTC)
        with self._read() as conn:
            rows = conn.execute(
                sa.select(runs.c.id, runs.c.host, runs.c.pid, runs.c.started_at).where(
                    runs.c.status == "running"
                )
            ).all()
        abandoned = [
            run_id
            for run_id, run_host, pid, started in rows
            if (run_host == host and not _pid_alive(pid))
            or (older_than is not None and started is not None and started < now - older_than)
        ]
        c = samples.c
        for run_id in abandoned:
            done = sa.select(sa.func.count()).where(c.run_id == run_id).scalar_subquery()
            last = sa.select(sa.func.max(c.finished_at)).where(c.run_id == run_id).scalar_subquery()
            stmt = (
                runs.update()
                .where(runs.c.id == run_id, runs.c.status == "running")
                .values(
                    status="interrupted", n_done=done, finished_at=sa.func.coalesce(last, runs.c.started_at)
                )
            )

            def write(stmt: sa.Update = stmt) -> None:
                with self._write() as conn:
                    conn.execute(stmt)

            self._retrying(write)
        return abandoned

    def last_run(self) -> RunRow | None:
        with self._read() as conn:
            row = conn.execute(runs.select().order_by(runs.c.started_at.desc()).limit(1)).mappings().first()
        return run_from_row(row) if row is not None else None

    def get_run(self, run_id: str) -> RunRow | None:
        with self._read() as conn:
            row = conn.execute(runs.select().where(runs.c.id == run_id)).mappings().first()
        return run_from_row(row) if row is not None else None

    # ----------------------------------------------------------------------- canaries

    def save_canaries(self, rows: Iterable[tuple[str, str, str, str]]) -> None:
        """Record canary contents by (id, hash); a hash names its content, so existing rows stay."""
        now = datetime.now(UTC)
        values = [
            {"canary_id": cid, "canary_hash": chash, "kind": kind, "content": content, "first_seen": now}
            for cid, chash, kind, content in rows
        ]
        if not values:
            return

        def write() -> None:
            with self._write() as conn:
                conn.execute(self._insert_canary, values)

        self._retrying(write)

    # ----------------------------------------------------------------------- samples

    def existing_keys(self, day: date, model_ids: Collection[str]) -> set[tuple[str, str, str, int]]:
        """(model_id, canary_id, canary_hash, sample_index) already stored for `day`."""
        if not model_ids:
            return set()
        c = samples.c
        stmt = sa.select(c.model_id, c.canary_id, c.canary_hash, c.sample_index).where(
            c.day == day, c.model_id.in_(list(model_ids))
        )
        with self._read() as conn:
            return {(m, cid, h, int(i)) for m, cid, h, i in conn.execute(stmt)}

    def stored_outcomes(self, day: date, model_ids: Collection[str]) -> dict[tuple[str, str, str, int], str]:
        """Outcome of every slot already stored for `day`: the planner skips final outcomes
        and re-runs `error` / `harness_error` slots."""
        if not model_ids:
            return {}
        c = samples.c
        stmt = sa.select(c.model_id, c.canary_id, c.canary_hash, c.sample_index, c.outcome).where(
            c.day == day, c.model_id.in_(list(model_ids))
        )
        with self._read() as conn:
            return {(m, cid, h, int(i)): outcome for m, cid, h, i, outcome in conn.execute(stmt)}

    def save_sample(self, run_id: str, sample: SampleResult, *, replace: bool = False) -> bool:
        """Store one sample and its attempts in one transaction; False if its key was already
        there and `replace` is off. replace=True swaps the old row and attempts atomically.

        Text neither database can hold (lone surrogates, NUL) is replaced by U+FFFD first and
        the sample flagged `sanitized` (canary.textsafe)."""
        sample = sanitize_sample(sample)
        values = sample_values(run_id, sample)

        def write() -> bool:
            with self._write() as conn:
                if replace:
                    sample_id = conn.execute(self._upsert, values).scalar_one()
                    conn.execute(self._delete_attempts, {"sid": sample_id})
                else:
                    sample_id = conn.execute(self._insert_new, values).scalar_one_or_none()
                    if sample_id is None:
                        return False
                if sample.attempts:
                    conn.execute(self._insert_attempts, attempt_values(sample_id, sample.attempts))
            return True

        return self._retrying(write)

    def samples(
        self,
        *,
        run_id: str | None = None,
        day: date | None = None,
        model_ids: Collection[str] | None = None,
        with_turns: bool = True,
    ) -> list[SampleRow]:
        """Samples matching every given filter, in key order. with_turns=False skips the
        transcripts (the bulk of the data) for callers that only count outcomes."""
        c = samples.c
        where: list[sa.ColumnElement[bool]] = []
        if run_id is not None:
            where.append(c.run_id == run_id)
        if day is not None:
            where.append(c.day == day)
        if model_ids is not None:
            where.append(c.model_id.in_(list(model_ids)))
        columns = [col for col in samples.c if with_turns or col.name != "transcript"]
        stmt = sa.select(*columns).where(*where).order_by(*(samples.c[k] for k in SAMPLE_KEY))
        ids = sa.select(c.id).where(*where)
        att_stmt = (
            attempts.select()
            .where(attempts.c.sample_id.in_(ids))
            .order_by(attempts.c.sample_id, attempts.c.seq)
        )
        with self._read() as conn:
            rows = conn.execute(stmt).mappings().all()
            by_sample: dict[int, list[Attempt]] = {}
            for arow in conn.execute(att_stmt).mappings():
                by_sample.setdefault(arow["sample_id"], []).append(attempt_from_row(arow))
        return [sample_from_row(row, by_sample.get(row["id"], [])) for row in rows]


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (signal 0 checks without sending)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OSError:
        return True
    return True
