"""Committing samples from a background thread while the asyncio runner keeps going."""

from __future__ import annotations

import queue
import threading

from canary.errors import StoreError
from canary.records import SampleResult
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
        """The first failure; after it nothing more is written, so the runner should stop."""
        return self._error

    @property
    def written(self) -> int:
        return self._written

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
            if self._store.save_sample(self._run_id, sample, replace=replace):
                self._written += 1
            else:
                self._skipped += 1
        except StoreError as exc:
            self._error = exc
        except Exception as exc:  # a bug must still reach the runner, not die with the thread
            error = StoreError(f"could not save sample {sample.key}: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            self._error = error
