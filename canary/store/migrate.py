"""Schema revisions: a cheap read of the current one, and Alembic only when upgrading.

Importing Alembic costs ~0.5 s, so nothing here imports it at module level: a normal run on
an up-to-date database reads `alembic_version` with one SELECT and never loads Alembic."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

import canary
from canary.errors import StoreError
from canary.store.engine import WRITE_OPTION, Target
from canary.store.schema import HEAD_REVISION, REVISIONS

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "alembic_version"
# Serialises concurrent `canary db upgrade` runs against one PostgreSQL database.
PG_MIGRATION_LOCK = 0x63616E617279  # "canary"


def migrations_dir() -> Path:
    """The Alembic script folder: bundled inside an installed wheel, else the repository's."""
    package = Path(canary.__file__).resolve().parent
    for candidate in (package / "_bundled" / "migrations", package.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise StoreError(
        f"cannot find the migrations folder (looked in {package / '_bundled'} and {package.parent})"
    )


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic Config without an ini file; env.py picks the connection up from attributes."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def read_revision(conn: sa.Connection) -> str | None:
    """The database's revision, None when it has no canary schema yet."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    versions = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if not versions:
        return None
    return "+".join(sorted(versions))  # more than one head is not ours: it stays unknown


def ahead_error(revision: str) -> StoreError:
    return StoreError(
        f"database schema is at revision {revision}, which this canary ({canary.__version__}, schema "
        f"{HEAD_REVISION}) does not know: a newer canary wrote it; upgrade canary to use this database"
    )


def behind_error(revision: str | None) -> StoreError:
    current = revision if revision is not None else "none (no canary tables yet)"
    return StoreError(
        f"database schema is at revision {current}, this canary needs {HEAD_REVISION}: run `canary db upgrade`"
    )


def is_known(revision: str | None) -> bool:
    return revision is None or revision in REVISIONS


def upgrade(engine: sa.Engine, target: Target) -> tuple[str | None, str]:
    """Bring the schema to head in ONE transaction; returns (from, to).

    On SQLite foreign keys are switched off for the duration, as SQLite's own ALTER TABLE
    procedure requires: batch migrations rebuild tables, and dropping the old copy of a parent
    table would otherwise cascade-delete its children. Integrity is re-checked before commit."""
    from alembic import command

    sqlite = target.dialect == "sqlite"
    with engine.connect() as conn:
        if sqlite:  # outside any transaction, where the pragma takes effect
            conn.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")
        try:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                if not sqlite:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_MIGRATION_LOCK})
                before = read_revision(conn)
                if not is_known(before):
                    raise ahead_error(str(before))
                if before != HEAD_REVISION:
                    command.upgrade(alembic_config(conn), "head")
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise StoreError(
                        f"migration left broken foreign keys in {target.where}; nothing was changed"
                    )
                after = read_revision(conn)
        finally:
            if sqlite:
                _restore_foreign_keys(conn)
    if after != HEAD_REVISION:
        raise StoreError(f"migration ended at revision {after}, expected {HEAD_REVISION}")
    return before, after


def _restore_foreign_keys(conn: sa.Connection) -> None:
    """Back to the pooled connection's normal state; if that fails, the pool must drop it."""
    try:
        if not conn.invalidated:
            conn.connection.driver_connection.execute("PRAGMA foreign_keys = ON")
    except Exception:
        conn.invalidate()
