"""Turning a store URL into a configured SQLAlchemy engine.

SQLite gets WAL (readers never wait for the writer), synchronous=NORMAL (a commit survives a
process crash; the last ones may be lost on power loss, which a rerun refills), foreign keys,
a busy timeout, and BEGIN IMMEDIATE for write transactions, so two writers queue on the
lock up front instead of failing half-way when a read lock cannot be upgraded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from canary.errors import StoreError

WRITE_OPTION = "canary_write"  # execution option: this transaction will write
PG_CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class Target:
    """Where the store lives, in the words error messages use (never with the password)."""

    url: URL
    dialect: str  # "sqlite" | "postgresql"
    where: str  # SQLite: the file path; PostgreSQL: host:port/database
    display_url: str
    password: str | None

    @property
    def path(self) -> Path | None:
        return Path(self.url.database) if self.dialect == "sqlite" and self.url.database else None


def parse_url(url: str, base_dir: Path | None = None) -> Target:
    """Normalise a store URL: PostgreSQL always through psycopg 3, relative SQLite paths
    resolved against `base_dir` (the folder of canary.yaml) rather than the working directory."""
    text = url.strip()
    for prefix in ("postgres://", "postgresql://"):
        if text.startswith(prefix):
            text = "postgresql+psycopg://" + text[len(prefix) :]
    try:
        parsed = sa.make_url(text)
    except sa.exc.ArgumentError as exc:
        raise StoreError(f"invalid store URL: {exc}") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite":
        if driver != "pysqlite":
            raise StoreError(f"unsupported SQLite driver {driver!r}: use sqlite:///path/to/canary.db")
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise StoreError("the store needs a SQLite file: use sqlite:///path/to/canary.db")
        path = Path(database).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        parsed = parsed.set(database=str(path.resolve()))
        return Target(parsed, "sqlite", str(path.resolve()), f"sqlite:///{path.resolve()}", None)
    if backend == "postgresql":
        if driver != "psycopg":
            raise StoreError(
                f"unsupported PostgreSQL driver {driver!r}: use postgresql+psycopg:// (psycopg 3)"
            )
        where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"
        display = parsed.render_as_string(hide_password=True)
        return Target(parsed, "postgresql", where, display, parsed.password)
    raise StoreError(f"unsupported store URL scheme {backend!r}: use sqlite:///… or postgresql://…")


def create_engine(target: Target, *, busy_timeout_s: float = 5.0) -> Engine:
    """A pooled engine for `target`; the SampleWriter thread and the caller share it."""
    if target.dialect == "sqlite":
        return _sqlite_engine(target, busy_timeout_s)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise StoreError(
            "PostgreSQL support needs psycopg 3: pip install 'canary-llm[postgres]'"
        ) from None
    # pool_pre_ping: a pooled connection the server dropped (restart, failover, an admin's
    # pg_terminate_backend) is replaced on checkout instead of failing the next sample.
    return sa.create_engine(
        target.url,
        connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S},
        pool_size=4,
        max_overflow=8,
        pool_pre_ping=True,
    )


def _sqlite_engine(target: Target, busy_timeout_s: float) -> Engine:
    assert target.path is not None
    try:
        target.path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder for the SQLite database {target.where}: {exc}") from None
    engine = sa.create_engine(target.url, connect_args={"timeout": busy_timeout_s})
    busy_ms = int(busy_timeout_s * 1000)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (the documented SQLAlchemy
        # recipe); BEGIN is emitted in _on_begin below.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
