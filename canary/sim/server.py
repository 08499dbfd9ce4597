"""Running the simulator: in a background thread (tests, `canary run` against sim models) or in
the foreground (`canary sim serve`)."""

from __future__ import annotations

import asyncio
import signal
import threading
from concurrent.futures import Future
from typing import Any

from canary.sim.script import SimScript
from canary.sim.state import SimState


class SimServer:
    """The simulator on its own event loop in a daemon thread, so synchronous callers can use it."""

    def __init__(self, script: SimScript, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = SimState(script)
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def anthropic_base_url(self) -> str:
        return self.url  # the SDK appends /v1/messages

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"  # the SDK appends /chat/completions

    def start(self) -> SimServer:
        """Returns once the socket is listening; bind errors surface here as SetupError."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        ready: Future[None] = Future()
        thread = threading.Thread(target=self._run, args=(loop, ready), name="canary-sim", daemon=True)
        thread.start()
        try:
            ready.result()
        except BaseException:
            thread.join()
            raise
        self._loop, self._thread = loop, thread
        return self

    def _run(self, loop: asyncio.AbstractEventLoop, ready: Future[None]) -> None:
        from canary.sim.app import start_site

        asyncio.set_event_loop(loop)
        try:
            self._runner, self.port = loop.run_until_complete(start_site(self._state, self.host, self.port))
        except BaseException as exc:
            loop.close()
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._loop = self._thread = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, int]:
        """Requests per model name; a plain copy, safe to take from any thread."""
        return self._state.stats()

    def reset(self) -> None:
        self._call(self._state.reset)

    def set_script(self, script: SimScript) -> None:
        self._call(self._state.set_script, script)

    def _call(self, fn: Any, *args: Any) -> None:
        """Run a state change on the server's loop (or directly when it is not running)."""
        if self._loop is None:
            fn(*args)
            return

        async def apply() -> None:
            fn(*args)

        asyncio.run_coroutine_threadsafe(apply(), self._loop).result()


def serve_forever(script: SimScript, host: str = "127.0.0.1", port: int = 8787) -> None:
    """Serve until SIGINT/SIGTERM; prints one line with the URL once listening."""
    asyncio.run(_serve(script, host, port))


async def _serve(script: SimScript, host: str, port: int) -> None:
    from canary.sim.app import start_site

    runner, bound = await start_site(SimState(script), host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    shown = f"[{host}]" if ":" in host else host
    print(f"canary simulator listening on http://{shown}:{bound}", flush=True)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
