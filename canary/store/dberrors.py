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


def _full(target: Target) -> StoreError:
    return StoreError(
        f"database or disk is full: nothing already committed was lost ({target.where}); free some space, "
        "then run again to fill the missing slots"
    )


def is_disconnect(exc: BaseException) -> bool:
    """True when a StoreError (or driver error) came from a connection the server dropped: the
    transaction it was in never committed or is idempotent to repeat, so one retry is safe."""
    cause = exc if isinstance(exc, sa.exc.DBAPIError) else exc.__cause__
    return isinstance(cause, sa.exc.DBAPIError) and bool(cause.connection_invalidated)


def translate(exc: sa.exc.DBAPIError, target: Target) -> StoreError:
    """Name the failure the user can act on: locked, full, unreachable; else a generic line."""
    orig = exc.orig if exc.orig is not None else exc
    detail = _first_line(orig, target)
    if target.dialect == "sqlite":
        code = getattr(orig, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        lowered = detail.lower()
        if primary in (SQLITE_BUSY, SQLITE_LOCKED) or "database is locked" in lowered:
            return StoreError(
                f"database is locked by another process ({target.where}): {detail}; wait for the other "
                "canary or tool holding it to finish (or stop it), then run again: committed samples are kept"
            )
        if primary == SQLITE_FULL or "database or disk is full" in lowered:
            return _full(target)
        if primary == SQLITE_CANTOPEN or "unable to open database" in lowered:
            return StoreError(f"cannot open the SQLite database {target.where}: {detail}")
        return StoreError(f"database error ({target.where}): {detail}")
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == "53100":
        return _full(target)
    if sqlstate == "55P03":  # lock_not_available: lock_timeout ran out
        waited = target.timeouts.lock_for("postgresql")
        return StoreError(
            f"a lock in PostgreSQL at {target.where} is held by another session (a locked table, or another "
            f"canary's check or upgrade): not granted within {waited:g} s (store lock_timeout_s); find it in "
            "pg_locks / pg_stat_activity, let it finish (or end it), then run again: committed samples are kept"
        )
    if sqlstate == "40P01":  # deadlock_detected
        return StoreError(
            f"PostgreSQL at {target.where} cancelled this transaction to break a deadlock with another "
            "session; run again: committed samples are kept"
        )
    if sqlstate == "57014":  # query_canceled: statement_timeout (or an admin's pg_cancel_backend)
        return StoreError(
            f"a statement on PostgreSQL at {target.where} was cancelled after at most "
            f"{target.timeouts.statement_s:g} s (store statement_timeout_s, or pg_cancel_backend): {detail}; "
            "run again: committed samples are kept"
        )
    if exc.connection_invalidated:
        return StoreError(
            f"lost the connection to PostgreSQL at {target.where}: {detail}; committed samples are kept, "
            "run again once the server is back to fill the gaps"
        )
    if isinstance(exc, sa.exc.OperationalError) and (sqlstate is None or sqlstate.startswith(("08", "57P"))):
        return StoreError(
            f"cannot connect to PostgreSQL at {target.where}: {detail}; check that the server is running "
            "and the store URL is right"
        )
    return StoreError(f"database error ({target.where}): {detail}")


@contextmanager
def guard(target: Target) -> Iterator[None]:
    """Re-raise driver errors as StoreError, keeping the original as __cause__ for debugging."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        raise translate(exc, target) from exc
