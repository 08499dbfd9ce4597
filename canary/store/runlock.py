"""One run at a time per database (and per shard): the second waits or is told why it cannot.

Unique sample keys already make a slot impossible to store twice; the lock keeps two runs from
spending model calls on the same slots, and from checking the day twice. The lock dies with
its process (a file lock on SQLite, a session advisory lock on PostgreSQL), so a crashed run
never leaves the database locked."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from canary.errors import EXIT_TEMPFAIL, CanaryError
from canary.store.store import Store


class RunLocked(CanaryError):
    exit_code = EXIT_TEMPFAIL


def _key(scope: str) -> int:
    """A signed 64-bit advisory lock key for this scope (e.g. the shard)."""
    digest = hashlib.sha256(f"canary-run:{scope}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _holder() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }


class RunLock:
    """Context manager: `with RunLock(store, scope="1/2", wait=False): ...`."""

    def __init__(self, store: Store, *, scope: str = "all", wait: bool = False, poll_s: float = 0.5) -> None:
        self.store, self.scope, self.wait, self.poll_s = store, scope, wait, poll_s
        self._file: IO[str] | None = None
        self._conn: sa.Connection | None = None
        self._pg_key = 0

    # --------------------------------------------------------------- SQLite: a file lock beside the database

    def _lock_path(self) -> Path:
        db = self.store.target.path
        assert db is not None
        suffix = "" if self.scope == "all" else "." + hashlib.sha256(self.scope.encode()).hexdigest()[:8]
        return db.with_name(db.name + f".run-lock{suffix}")

    def _acquire_file(self) -> None:
        path = self._lock_path()
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise RunLocked(self._busy_message(holder)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(_holder()))
        handle.flush()
        self._file = handle

    # --------------------------------------------------------------- PostgreSQL: a session advisory lock

    def _acquire_pg(self) -> None:
        conn = self.store.engine.connect()
        try:
            # Advisory locks are per database: scope the key to canary's schema as well, so two
            # projects sharing a database (in their own schemas) do not block each other.
            where = conn.execute(sa.text("SELECT current_database() || '/' || current_schema()")).scalar()
            key = self._pg_key = _key(f"{where}:{self.scope}")
            while True:
                got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                conn.commit()
                if got:
                    break
                if not self.wait:
                    raise RunLocked(self._busy_message(""))
                time.sleep(self.poll_s)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _busy_message(self, holder: str) -> str:
        who = ""
        if holder:
            try:
                info = json.loads(holder)
                who = f" (pid {info['pid']} on {info['host']}, since {info['since']})"
            except (ValueError, KeyError):
                pass
        shard = "" if self.scope == "all" else f" for shard {self.scope}"
        return (
            f"another canary run is in progress on {self.store.display_url}{shard}{who}; "
            "pass --wait to wait for it, or try again later"
        )

    def __enter__(self) -> RunLock:
        if self.store.target.dialect == "sqlite":
            self._acquire_file()
        else:
            self._acquire_pg()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self._pg_key})
                self._conn.commit()
            except sa.exc.SQLAlchemyError:
                pass  # the connection is gone, and its lock with it
            finally:
                self._conn.close()
                self._conn = None
