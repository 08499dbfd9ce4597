"""Turning a store URL into a configured SQLAlchemy engine.

SQLite gets WAL (readers never wait for the writer), synchronous=NORMAL (a commit survives a
process crash; the last ones may be lost on power loss, which a rerun refills), foreign keys,
a busy timeout, and BEGIN IMMEDIATE for write transactions, so two writers queue on the
lock up front instead of failing half-way when a read lock cannot be upgraded.

PostgreSQL never waits unbounded: every connection has a connect timeout, and every session
sets `lock_timeout` and `statement_timeout`, so a table locked by someone else, or a statement
stuck behind a long transaction, ends as one StoreError instead of a run that hangs at 06:00.
The timeouts come from the store URL's query (`?lock_timeout_s=5`), which canary.yaml's mapping
form of `store:` fills in (see canary.config.load)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from canary.errors import StoreError

WRITE_OPTION = "canary_write"  # execution option: this transaction will write
PG_CONNECT_TIMEOUT_S = 10.0
PG_LOCK_TIMEOUT_S = 30.0
PG_STATEMENT_TIMEOUT_S = 120.0
SQLITE_BUSY_TIMEOUT_S = 5.0
# canary's own URL query parameters: taken out of the URL before it reaches the driver.
TIMEOUT_PARAMS = ("connect_timeout_s", "lock_timeout_s", "statement_timeout_s")


@dataclass(frozen=True)
class Timeouts:
    """Every bound on a database wait, in seconds. `lock_s` None: the dialect's default
    (SQLite's busy timeout 5 s, PostgreSQL's lock_timeout 30 s). 0 turns a PostgreSQL bound off."""

    connect_s: float = PG_CONNECT_TIMEOUT_S
    lock_s: float | None = None
    statement_s: float = PG_STATEMENT_TIMEOUT_S

    def lock_for(self, dialect: str) -> float:
        if self.lock_s is not None:
            return self.lock_s
        return SQLITE_BUSY_TIMEOUT_S if dialect == "sqlite" else PG_LOCK_TIMEOUT_S


def _timeouts(url: URL) -> tuple[URL, Timeouts]:
    """Take canary's timeout parameters out of the URL's query; a bad value is a StoreError."""
    values: dict[str, float] = {}
    for name in TIMEOUT_PARAMS:
        raw = url.query.get(name)
        if raw is None:
            continue
        text = raw[-1] if isinstance(raw, tuple) else raw
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not math.isfinite(value) or value < 0:
            raise StoreError(f"store URL: {name}={text!r} is not a number of seconds (e.g. {name}=30)")
        values[name.removesuffix("_timeout_s")] = value
    url = url.difference_update_query(TIMEOUT_PARAMS)
    return url, Timeouts(
        connect_s=values.get("connect", PG_CONNECT_TIMEOUT_S),
        lock_s=values.get("lock"),
        statement_s=values.get("statement", PG_STATEMENT_TIMEOUT_S),
    )


@dataclass(frozen=True)
class Target:
    """Where the store lives, in the words error messages use (never with the password)."""

    url: URL
    dialect: str  # "sqlite" | "postgresql"
    where: str  # SQLite: the file path; PostgreSQL: host:port/database
    display_url: str
    password: str | None
    timeouts: Timeouts = field(default_factory=Timeouts)

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
    parsed, timeouts = _timeouts(parsed)
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
        return Target(parsed, "sqlite", str(path.resolve()), f"sqlite:///{path.resolve()}", None, timeouts)
    if backend == "postgresql":
        if driver != "psycopg":
            raise StoreError(
                f"unsupported PostgreSQL driver {driver!r}: use postgresql+psycopg:// (psycopg 3)"
            )
        where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"
        display = parsed.render_as_string(hide_password=True)
        return Target(parsed, "postgresql", where, display, parsed.password, timeouts)
    raise StoreError(f"unsupported store URL scheme {backend!r}: use sqlite:///… or postgresql://…")


def create_engine(target: Target, *, busy_timeout_s: float | None = None) -> Engine:
    """A pooled engine for `target`; the SampleWriter thread and the caller share it.
    `busy_timeout_s` overrides the SQLite lock wait (tests use a short one)."""
    if target.dialect == "sqlite":
        return _sqlite_engine(
            target, target.timeouts.lock_for("sqlite") if busy_timeout_s is None else busy_timeout_s
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise StoreError("PostgreSQL support needs psycopg 3: pip install 'canary-llm[postgres]'") from None
    return _pg_engine(target)


def _pg_engine(target: Target) -> Engine:
    timeouts = target.timeouts
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in target.url.query and timeouts.connect_s > 0:
        # libpq counts whole seconds and treats 1 as 2; round up so a bound is never lost
        connect_args["connect_timeout"] = max(2, math.ceil(timeouts.connect_s))
    settings = {
        "lock_timeout": f"{round(timeouts.lock_for('postgresql') * 1000)}ms",
        "statement_timeout": f"{round(timeouts.statement_s * 1000)}ms",
    }
    # pool_pre_ping: a pooled connection the server dropped (restart, failover, an admin's
    # pg_terminate_backend) is replaced on checkout instead of failing the next sample.
    # pool_timeout: waiting for a free pooled connection is bounded too.
    engine = sa.create_engine(
        target.url,
        connect_args=connect_args,
        pool_size=4,
        max_overflow=8,
        pool_pre_ping=True,
        pool_timeout=max(timeouts.connect_s, 1.0) + timeouts.lock_for("postgresql"),
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Session settings, committed so the pool's rollback-on-return cannot undo them.
        # SET rather than libpq `options`, which the URL may already use (search_path) and
        # which connection poolers such as PgBouncer refuse.
        with dbapi_conn.cursor() as cursor:
            for name, value in settings.items():
                cursor.execute(f"SET {name} = '{value}'")
        dbapi_conn.commit()

    return engine


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
