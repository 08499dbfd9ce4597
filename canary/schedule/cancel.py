"""Cancel an in-flight `canary run` from another thread, so a stopping daemon leaves the
unfinished samples for the next run instead of waiting for them (or half-writing them).

canary.pipeline.run drives its requests with `asyncio.run` and takes no stop hook, so the job
thread's event loop is captured at creation through an event-loop policy that only records
loops made on a thread that opted in. Cancelling the loop's tasks unwinds the run the same way
Ctrl-C does: completed samples are already committed one by one, in-flight requests are dropped,
the run row is marked `interrupted`. If pipeline.run grows a stop hook, use that instead."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

_local = threading.local()


class RunCanceller:
    """Holds the loops created by one job thread; cancel() may come from any thread, before
    the loop exists (the run is then cancelled as it starts) or after it is gone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loops: list[tuple[asyncio.AbstractEventLoop, threading.Thread]] = []
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._loops.append((loop, threading.current_thread()))
            if self._cancelled:
                loop.call_soon(_cancel_tasks, loop, threading.current_thread())

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            loops = list(self._loops)
        for loop, owner in loops:
            with suppress(RuntimeError):  # already closed: that run is over
                loop.call_soon_threadsafe(_cancel_tasks, loop, owner)


def _cancel_tasks(loop: asyncio.AbstractEventLoop, owner: threading.Thread) -> None:
    # Only a loop run by the job thread itself is the run's; the simulator also creates its
    # loop on the job thread but runs it on its own, and must keep serving until the run ends.
    if threading.current_thread() is not owner:
        return
    for task in asyncio.all_tasks(loop):
        task.cancel()


class _TappingPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        canceller = getattr(_local, "canceller", None)
        if canceller is not None:
            canceller._adopt(loop)
        return loop


@contextmanager
def tapping() -> Iterator[None]:
    """Install the recording policy for the duration (process-wide; it only records loops on
    threads inside `cancellable`)."""
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(_TappingPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(previous)


@contextmanager
def cancellable(canceller: RunCanceller) -> Iterator[RunCanceller]:
    """Mark the current thread: event loops it creates can be cancelled by `canceller`."""
    _local.canceller = canceller
    try:
        yield canceller
    finally:
        _local.canceller = None
