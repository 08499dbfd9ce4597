"""Database failures as one-line StoreErrors the CLI can print instead of a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from canary.errors import StoreError
from canary.store.engine import Target

SQLITE_BUSY, SQLITE_LOCKED, SQLITE_FULL, SQLITE_CANTOPEN = 5, 6, 13, 14


def _first_line(exc: BaseException, target: Target) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else type(exc).__name__
    if target.password:
        text = text.replace(target.password, "***")
    return text


def translate(exc: sa.exc.DBAPIError, target: Target) -> StoreError:
    """Name the failure the user can act on: locked, full, unreachable; else a generic line."""
    orig = exc.orig if exc.orig is not None else exc
    detail = _first_line(orig, target)
    if target.dialect == "sqlite":
        code = getattr(orig, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        lowered = detail.lower()
        if primary in (SQLITE_BUSY, SQLITE_LOCKED) or "database is locked" in lowered:
            return StoreError(f"database is locked by another process ({target.where}): {detail}")
        if primary == SQLITE_FULL or "database or disk is full" in lowered:
            return StoreError(f"database or disk is full: nothing already committed was lost ({target.where})")
        if primary == SQLITE_CANTOPEN or "unable to open database" in lowered:
            return StoreError(f"cannot open the SQLite database {target.where}: {detail}")
        return StoreError(f"database error ({target.where}): {detail}")
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == "53100":
        return StoreError(f"database or disk is full: nothing already committed was lost ({target.where})")
    if isinstance(exc, sa.exc.OperationalError) and (
        sqlstate is None or sqlstate.startswith(("08", "57P"))
    ):
        return StoreError(f"cannot connect to PostgreSQL at {target.where}: {detail}")
    return StoreError(f"database error ({target.where}): {detail}")


@contextmanager
def guard(target: Target) -> Iterator[None]:
    """Re-raise driver errors as StoreError, keeping the original as __cause__ for debugging."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        raise translate(exc, target) from exc
