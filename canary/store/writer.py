"""Committing samples from a background thread while the asyncio runner keeps going.

A sample the database refuses (a value out of range, text it cannot encode, a bug in the row
mapping) is stored instead as that sample's `harness_error`, with a short reason and without
its transcript; only a store outage (locked, full, unreachable, the connection lost after its
retry) stops the run. Nothing one model answer contains can cost another sample."""

from __future__ import annotations

import dataclasses
import queue
import threading

import sqlalchemy as sa

from canary.errors import EXIT_IOERR, StoreError
from canary.records import SampleResult
from canary.store.dberrors import is_disconnect
from canary.store.store import Store

_STOP = object()


class SampleWriter:
    """A background thread that commits each sample as soon as it is submitted, so a crash
    loses only what is in flight and the asyncio loop never blocks on the database.

    One transaction per sample, on purpose: batching would be faster but would widen what a
    crash loses, and SQLite in WAL mode already commits thousands of samples a second."""

    def __init__(self, store: Store, run_id: str, *, replace: bool = False) -> None:
        self._store = store
        self._run_id = run_id
        self._replace = replace
        self._queue: queue.Queue[object] = queue.Queue()
        self._error: StoreError | None = None
        self._written = 0
        self._skipped = 0
        self._unstorable: list[tuple[tuple[str, str, str, int], str]] = []
        self._closed = False
        # Daemon: if the caller dies without close(), the process still exits; what was only
        # queued is lost, which a rerun of the same day refills.
        self._thread = threading.Thread(target=self._run, name="canary-sample-writer", daemon=True)
        self._thread.start()

    def submit(self, sample: SampleResult, *, replace: bool | None = None) -> None:
        """Queue a sample for writing; returns at once. Thread-safe. `replace` overrides the
        writer's default for this sample (a re-run of a slot that ended in `error`)."""
        if self._closed:
            raise RuntimeError("SampleWriter.submit() after close()")
        self._queue.put((sample, self._replace if replace is None else replace))

    @property
    def error(self) -> StoreError | None:
        """The first store outage; after it nothing more is written, so the runner should stop.
        A single unstorable sample is not one (see `unstorable`)."""
        return self._error

    @property
    def written(self) -> int:
        return self._written

    @property
    def unstorable(self) -> list[tuple[tuple[str, str, str, int], str]]:
        """(sample key, why) of each sample the database refused, stored as `harness_error`."""
        return list(self._unstorable)

    @property
    def skipped(self) -> int:
        """Samples whose key was already stored (and replace was off)."""
        return self._skipped

    def flush(self) -> None:
        """Block until everything submitted so far is committed (or has failed)."""
        self._queue.join()

    def close(self) -> int:
        """Write what is queued, stop the thread; returns samples written, raises the first error."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._written

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                if self._error is None:
                    self._save(*item)  # type: ignore[misc]
            finally:
                self._queue.task_done()

    def _save(self, sample: SampleResult, replace: bool) -> None:
        try:
            stored = self._store.save_sample(self._run_id, sample, replace=replace)
        except Exception as exc:  # every failure is classified: the store's, or this sample's
            if is_outage(exc):
                self._error = _as_store_error(exc, sample)
                return
            stored = self._save_unstorable(sample, replace, exc)
            if stored is None:
                return
        if stored:
            self._written += 1
        else:
            self._skipped += 1

    def _save_unstorable(self, sample: SampleResult, replace: bool, exc: Exception) -> bool | None:
        """Store `sample` as a harness_error without the text that was refused; None (and the
        run stops) when even that fails, which means the store, not the sample, is the problem."""
        why = f"could not be stored: {one_line_error(exc)}"
        try:
            stored = self._store.save_sample(self._run_id, unstorable(sample, why), replace=replace)
        except Exception as again:
            self._error = _as_store_error(again, sample)
            return None
        if stored:  # not when another runner stored the slot meanwhile
            self._unstorable.append((sample.key, why))
        return stored


REASON_CHARS = 300


def one_line_error(exc: BaseException) -> str:
    """`Type: first line` of an exception, ASCII only (a refused value must not be echoed back
    into the row that replaces it), at most REASON_CHARS characters."""
    lines = str(exc).strip().splitlines()
    first = lines[0].strip() if lines else ""
    # a StoreError already names the database and the driver's message; others need their type
    text = first if isinstance(exc, StoreError) and first else f"{type(exc).__name__}: {first}".rstrip(": ")
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


def is_outage(exc: BaseException) -> bool:
    """True when the failure is the database's, not this sample's: locked, busy, full,
    unreachable, timed out, a dropped connection (after the store's one retry), or one of our
    own StoreErrors that carries no driver error (schema mismatch, missing run). Data errors,
    constraint violations and encoding or range errors raised while binding the values are
    the sample's."""
    if is_disconnect(exc):
        return True
    if isinstance(exc, StoreError):
        if exc.exit_code != EXIT_IOERR:  # e.g. 75, another process holds a lock
            return True
        cause = exc.__cause__
        if cause is None:
            return True
        exc = cause
    return isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError))


def unstorable(sample: SampleResult, why: str) -> SampleResult:
    """What is kept of a sample the database refused: its key, times and request history
    (attempt codes and messages as ASCII), outcome harness_error, no transcript or counts."""
    attempts = [
        dataclasses.replace(a, code=_ascii(a.code, 64), message=_ascii(a.message, REASON_CHARS))
        for a in sample.attempts
    ]
    return SampleResult(
        day=sample.day,
        model_id=sample.model_id,
        canary_id=sample.canary_id,
        canary_hash=sample.canary_hash,
        sample_index=sample.sample_index,
        outcome="harness_error",
        started_at=sample.started_at,
        finished_at=sample.finished_at,
        reason=why,
        attempts=attempts,
        error_code="unstorable",
        error_message=why,
    )


def _ascii(text: str, limit: int) -> str:
    return text.encode("ascii", "backslashreplace").decode("ascii")[:limit]


def _as_store_error(exc: BaseException, sample: SampleResult) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    # a bug must still reach the runner, not die with the thread
    error = StoreError(f"could not save sample {sample.key}: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
