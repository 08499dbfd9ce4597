"""Ping an outside dead man's switch (Healthchecks.io, Cronitor, Uptime Kuma) at the start and
the end of every run, so a host that is down, asleep or has lost its timer is noticed by
something that is not running on it: canary's own `stale` alert cannot fire from a dead host.

`heartbeat: {url_env: CANARY_HEARTBEAT_URL, style: healthchecks}` in canary.yaml. The ping URL
holds the monitor's token, so it is read from the environment and only ever shown as its
origin (`https://hc-ping.com/…`). A ping never changes the run: a server that is down, slow,
answers 500 or garbage costs one warning line and at most `timeout_s` (the request runs on its
own thread, abandoned at the deadline), and the run keeps its exit code."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from canary.config.models import HeartbeatConfig
from canary.errors import EXIT_FIRING, EXIT_OK, EXIT_SOFTWARE, CanaryError

EXIT_INTERRUPTED = 130

Kind = Literal["start", "success", "fail"]
USER_AGENT = "canary-heartbeat/1"
MAX_BODY = 10_000  # Healthchecks keeps up to 100 kB; a summary is a few lines
MAX_MESSAGE = 500  # Cronitor's `message`, Uptime Kuma's `msg`: a query parameter, so short
_MAX_ANSWER = 4096  # only read for a hint


def redact(url: str) -> str:
    """The URL without its path and query (where the token lives): `https://hc-ping.com/…`."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    return f"{parts.scheme}://{host}{port}/…"


@dataclass(frozen=True)
class Ping:
    method: str
    url: str
    body: bytes = b""


def build_ping(style: str, url: str, kind: Kind, summary: str, run_id: str) -> Ping | None:
    """The request one service expects for `kind`, or None when it has no such event
    (Uptime Kuma has no "started")."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    short = " ".join(summary.split())[:MAX_MESSAGE]
    if style == "healthchecks":
        # /start and /fail are suffixes of the ping URL; rid pairs a start with its end
        path = parts.path.rstrip("/") + {"start": "/start", "success": "", "fail": "/fail"}[kind]
        query = [*query, ("rid", run_id)]
        target = urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), ""))
        return Ping("POST", target, summary.encode("utf-8")[:MAX_BODY])
    if style == "cronitor":
        state = {"start": "run", "success": "complete", "fail": "fail"}[kind]
        keep = [(k, v) for k, v in query if k not in ("state", "message", "series")]
        query = [*keep, ("state", state), ("series", run_id), ("message", short)]
        return Ping("GET", urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), "")))
    if style == "uptime_kuma":
        if kind == "start":
            return None
        keep = [
            (k, v) for k, v in query if k not in ("status", "msg", "ping")
        ]  # the copied URL has ?status=up&msg=OK&ping=
        query = [*keep, ("status", "up" if kind == "success" else "down"), ("msg", short)]
        return Ping("GET", urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), "")))
    raise ValueError(f"unknown heartbeat style {style!r}")


def _answer_problem(style: str, status: int, answer: bytes) -> str | None:
    """Why an answer is not a recorded ping, or None."""
    if not 200 <= status < 300:
        return f"answered HTTP {status}"
    if style == "uptime_kuma":  # {"ok": true}, or {"ok": false, "msg": ...} for an unknown token
        try:
            ok = json.loads(answer.decode("utf-8")).get("ok") is True
        except (ValueError, AttributeError, UnicodeDecodeError):
            ok = False
        if not ok:
            return f'answered HTTP {status} without {{"ok": true}}'
    return None


def send(ping: Ping, timeout_s: float, style: str = "healthchecks") -> str | None:
    """Make the request; return None when the monitor took it, else why not (never the URL).
    Goes straight through a transport, as canary.alerts.channels.posting does, so no client
    logs the URL."""
    import httpx

    from canary.alerts.channels.posting import _proxy_for, _scrub

    request = httpx.Request(
        ping.method,
        ping.url,
        content=ping.body or None,
        headers={
            "User-Agent": USER_AGENT,
            **({"Content-Type": "text/plain; charset=utf-8"} if ping.body else {}),
        },
        extensions={"timeout": httpx.Timeout(timeout_s).as_dict()},
    )
    try:
        with httpx.HTTPTransport(proxy=_proxy_for(ping.url)) as transport:
            response = transport.handle_request(request)
            try:
                answer = b""
                for chunk in response.iter_raw():
                    answer += chunk
                    if len(answer) >= _MAX_ANSWER:
                        break
            finally:
                response.close()
    except httpx.TimeoutException:
        return f"no answer within {timeout_s:g} s"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {_scrub(str(exc), ping.url) or 'request failed'}"
    except Exception as exc:  # a bad URL, an odd proxy setting: still only a warning
        return f"{type(exc).__name__}: {_scrub(str(exc), ping.url)}"[:300]
    return _answer_problem(style, response.status_code, answer)


class Heartbeat:
    """One run's pings. `warn` gets one line per ping that did not land (never the URL)."""

    def __init__(
        self,
        url: str | None,
        *,
        style: str = "healthchecks",
        timeout_s: float = 10.0,
        warn: Callable[[str], None],
        run_id: str | None = None,
    ) -> None:
        self._url = url  # None: no heartbeat configured (or usable); every ping is a no-op
        self.label = f"heartbeat ({redact(url)}, {style})" if url else "heartbeat (off)"
        self.style, self.timeout_s, self.warn = style, timeout_s, warn
        self.run_id = run_id or str(uuid.uuid4())  # Healthchecks wants a UUID for rid
        self.started = False

    def __repr__(self) -> str:  # no URL in a traceback's locals either
        return f"Heartbeat({self.label})"

    @property
    def enabled(self) -> bool:
        return self._url is not None

    @classmethod
    def from_config(
        cls, config: HeartbeatConfig | None, env: Mapping[str, str], *, warn: Callable[[str], None]
    ) -> Heartbeat:
        """Off when no heartbeat is configured, or (with one warning) when its variable is not set
        or holds no http(s) URL: the run goes on, and the outside monitor, seeing no ping, says so."""
        if config is None:
            return cls(None, warn=warn)
        from canary.alerts.channels.posting import is_http_url

        url = env.get(config.url_env, "").strip()
        if not url:
            warn(f"heartbeat: environment variable {config.url_env} is not set; no pings are sent")
            return cls(None, warn=warn)
        if not is_http_url(url):
            warn(f"heartbeat: {config.url_env} does not hold an http(s) URL; no pings are sent")
            return cls(None, warn=warn)
        return cls(url, style=config.style, timeout_s=config.timeout_s, warn=warn)

    def start(self, summary: str) -> bool:
        self.started = True
        return self._ping("start", summary)

    def finish(self, ok: bool, summary: str) -> bool:
        return self._ping("success" if ok else "fail", summary)

    # The three moments of a run, for `canary run` and the daemon's job.

    def run_started(self, report: Any) -> None:
        """pipeline.run's on_start: the run holds its lock and has planned the day."""
        self.start(
            f"canary run starting for {report.day}: {report.planned} samples planned, "
            f"{report.already} already stored\n"
        )

    def run_finished(self, code: int, report: Any, firing: int | None) -> None:
        """Success when the run and its check completed (exit 0, or 1: an alert is firing and was
        notified); fail for anything else (69 a model could not be monitored, 70, ...)."""
        self.finish(
            code in (EXIT_OK, EXIT_FIRING),
            run_summary(
                day=report.day,
                run_id=report.run_id,
                planned=report.planned,
                already=report.already,
                outcomes=Counter(s.outcome for s in report.stats.samples),
                trouble=list(report.trouble),
                firing=firing,
                exit_code=code,
            ),
        )

    def run_failed(self, exc: BaseException, report: Any = None) -> None:
        """The run raised. A run that found another one holding the lock never started: that one
        pings. Otherwise /fail with the one-line reason (CanaryError messages hold no secret)."""
        from canary.store.runlock import RunLocked

        if not self.enabled or (isinstance(exc, RunLocked) and not self.started):
            return
        if isinstance(exc, CanaryError):
            code, reason = exc.exit_code, exc.message
        elif isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)):
            code, reason = EXIT_INTERRUPTED, "interrupted; completed samples are stored"
        else:
            code, reason = EXIT_SOFTWARE, f"{type(exc).__name__} (a bug in canary: run with CANARY_DEBUG=1)"
        self.finish(
            False,
            run_summary(
                day=getattr(report, "day", "-"),
                run_id=getattr(report, "run_id", None),
                planned=getattr(report, "planned", 0),
                already=getattr(report, "already", 0),
                outcomes={},
                trouble=[],
                firing=None,
                exit_code=code,
                error=reason,
            ),
        )

    def _ping(self, kind: Kind, summary: str) -> bool:
        if self._url is None:
            return True
        ping = build_ping(self.style, self._url, kind, summary, self.run_id)
        if ping is None:
            return True
        outcome: list[str | None] = []

        def work() -> None:
            outcome.append(send(ping, self.timeout_s, self.style))

        # Its own thread with a deadline: httpx's timeouts are per phase (connect, each read), so a
        # server that trickles bytes could otherwise hold the run; an abandoned thread ends with
        # the process (daemon) or at its own httpx timeouts.
        thread = threading.Thread(target=work, name=f"canary-heartbeat-{kind}", daemon=True)
        thread.start()
        thread.join(self.timeout_s + 1.0)
        problem = outcome[0] if outcome else f"no answer within {self.timeout_s:g} s"
        if problem is None:
            return True
        self.warn(f"{self.label}: {kind} ping not recorded: {problem}; the run goes on")
        return False


def run_summary(
    *,
    day: object,
    run_id: str | None,
    planned: int,
    already: int,
    outcomes: Mapping[str, int],
    trouble: list[str],
    firing: int | None,
    exit_code: int,
    error: str | None = None,
) -> str:
    """A few lines for the ping body: counts and ids only, never a prompt, an answer or a secret."""
    order = ["pass", "fail", "unavailable", "error", "harness_error"]
    counts = ", ".join(f"{k} {outcomes.get(k, 0)}" for k in order if k in outcomes or k in order[:3])
    lines = [
        f"canary run {run_id or '-'} for {day}: exit {exit_code}",
        f"samples: {sum(outcomes.values())} this run ({counts}); {planned} planned, {already} already stored",
    ]
    if trouble:
        lines.append(f"models that could not be monitored: {', '.join(sorted(trouble))}")
    if firing is not None:
        lines.append(f"alerts firing: {firing}")
    if error:
        lines.append(f"error: {' '.join(error.split())[:300]}")
    return "\n".join(lines) + "\n"
