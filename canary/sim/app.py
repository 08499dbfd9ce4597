"""The aiohttp application: routes, fault execution and response pacing.

Handlers are cancelled when the client disconnects (`handler_cancellation`), so a held
`timeout` request or a slow stream costs nothing once the client has given up."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
from datetime import UTC, date, datetime

from aiohttp import web

from canary.config.models import SimFault
from canary.errors import SetupError
from canary.sim import badbody, oddtext
from canary.sim.anthropic_wire import AnthropicWire
from canary.sim.openai_wire import OpenAIWire
from canary.sim.replies import faulty, finish, scripted
from canary.sim.request import WireError
from canary.sim.state import SimState
from canary.sim.wire import Wire, dumps, new_id

STATE = web.AppKey("canary_sim_state", SimState)
CLOSING = web.AppKey("canary_sim_closing", asyncio.Event)
DAY_HEADER = "x-canary-sim-day"
HOLD_S = 3600.0  # a `timeout` fault holds the request this long (or until shutdown / disconnect)
MAX_WRITES = 4  # a paced stream is written in at most this many bursts
CONTENT_FAULTS = ("empty", "huge", "bad_tool_args")
# issue 8: answers that stop early, and 200s that are not the vendor's shape
STOP_FAULTS = ("truncated", "refusal", "content_filter")
BODY_FAULTS = ("malformed", "html")
JSON = "application/json"


def make_app(state: SimState) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = state
    app[CLOSING] = asyncio.Event()
    app.on_shutdown.append(_on_shutdown)
    anthropic, openai = AnthropicWire(), OpenAIWire()

    async def messages(request: web.Request) -> web.StreamResponse:
        return await model_call(request, anthropic)

    async def chat(request: web.Request) -> web.StreamResponse:
        return await model_call(request, openai)

    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/_sim/stats", stats)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_get("/healthz", healthz)
    return app


async def start_site(state: SimState, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Listen on host:port (0 picks a free port); returns the runner and the bound port."""
    runner = web.AppRunner(make_app(state), access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise SetupError(f"simulator cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return runner, int(runner.addresses[0][1])


async def _on_shutdown(app: web.Application) -> None:
    app[CLOSING].set()


async def stats(request: web.Request) -> web.Response:
    counts = request.app[STATE].stats()
    return web.json_response({"requests": counts, "total": sum(counts.values())})


async def reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"ok": True})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def error_response(
    wire: Wire,
    status: int,
    body: dict,
    retry_after_s: float | None = None,
    extra: dict[str, str] | None = None,
) -> web.Response:
    headers = {wire.request_id_header: new_id("req_sim_"), **(extra or {})}
    if retry_after_s is not None:
        if not math.isfinite(retry_after_s):  # `retry_after_s: .inf`: a server sending "retry-after: inf"
            headers["retry-after"] = "inf"
        else:
            whole = float(retry_after_s).is_integer()
            headers["retry-after"] = str(int(retry_after_s)) if whole else str(retry_after_s)
            headers["retry-after-ms"] = str(int(retry_after_s * 1000))
    return web.Response(status=status, body=dumps(body), content_type=JSON, headers=headers)


def sim_day(request: web.Request) -> date:
    raw = request.headers.get(DAY_HEADER)
    if raw is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise WireError(400, f"{DAY_HEADER}: expected YYYY-MM-DD, got {raw[:40]!r}") from None


async def model_call(request: web.Request, wire: Wire) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        body = json.loads(await request.read())
    except ValueError:
        return error_response(wire, 400, wire.error(400, "request body is not valid JSON"))
    if not isinstance(body, dict):
        return error_response(wire, 400, wire.error(400, "request body must be a JSON object"))
    try:
        req = wire.parse(body)
        state.count(req.model)
        day = sim_day(request)
    except WireError as exc:
        return error_response(wire, exc.status, wire.error(exc.status, exc.message))
    behaviour = state.behaviour(req.model)
    if behaviour is None:
        return error_response(wire, 404, wire.not_found(req.model))
    eff = state.effective(req.model, behaviour, day)
    fault = state.pick_fault(req.model, behaviour, day)
    if fault is not None and fault.kind in ("status", "quota", "timeout"):
        return await failure(request, wire, fault)
    kind = fault.kind if fault is not None else None
    headers = {wire.request_id_header: new_id("req_sim_"), **badbody.retry_header(fault)}
    if fault is not None and kind in BODY_FAULTS:
        return await badbody.respond(request, wire, fault, req, eff, headers)
    rule = state.rule(req.first_user_text)
    if fault is None or kind not in CONTENT_FAULTS + STOP_FAULTS or kind == "truncated":
        key = rule.key if rule is not None else ""
        content = scripted(
            req, rule, lambda: state.roll(req.model, behaviour, day, key, eff.quality), eff.forget_after_turn
        )
    if fault is not None and kind in CONTENT_FAULTS + STOP_FAULTS:
        content = faulty(fault, req, rule, content if kind == "truncated" else None)
    odd = fault if kind == "odd_text" else None
    if odd is not None:
        content, eff = oddtext.content(odd, content), oddtext.effective(odd, eff, req.model)
    reply = finish(content, req, eff)
    if odd is not None:
        reply = oddtext.reply(odd, reply)
        headers[wire.request_id_header] += oddtext.REQUEST_ID_SUFFIX
    if kind == "huge" and fault is not None:  # the answer is written lazily: count what will be sent
        reply = dataclasses.replace(reply, output_tokens=math.ceil(fault.size / 4 * eff.token_inflation))
    broken = kind == "mid_stream"
    if req.stream:
        frames = wire.frames(reply, req, eff, broken=broken)
        if odd is not None:
            frames = [oddtext.encode(f) for f in frames]
        if kind == "no_stop":
            frames = badbody.without_closing(frames)
        if kind == "huge":
            assert fault is not None
            return await badbody.huge_stream(request, frames, fault.size, headers)
        return await stream(request, frames, eff.latency_s, headers, close=broken)
    if eff.latency_s:
        await asyncio.sleep(eff.latency_s)
    payload = dumps(wire.response(reply, req, eff))
    if odd is not None:
        payload = oddtext.encode(payload)
    if broken:
        return await truncated(request, payload, headers)
    if kind == "no_stop":  # a whole-looking body that ends half way (Content-Length matches)
        return web.Response(body=payload[: len(payload) // 2], content_type=JSON, headers=headers)
    if kind == "huge":
        assert fault is not None
        return await badbody.huge_whole(request, payload, fault.size, headers)
    return web.Response(body=payload, content_type=JSON, headers=headers)


async def failure(request: web.Request, wire: Wire, fault: SimFault) -> web.StreamResponse:
    extra = badbody.retry_header(fault)
    if fault.kind == "quota":
        return error_response(wire, 429, wire.quota(), fault.retry_after_s, extra)
    if fault.kind == "timeout":
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(request.app[CLOSING].wait(), HOLD_S)
        return error_response(wire, 503, wire.error(503, "simulator shutting down"))
    message = {529: "Overloaded", 429: "Rate limited (simulated)"}.get(
        fault.status, f"Simulated error {fault.status}"
    )
    return error_response(wire, fault.status, wire.error(fault.status, message), fault.retry_after_s, extra)


async def stream(
    request: web.Request,
    frames: list[bytes],
    latency_s: float,
    headers: dict[str, str],
    *,
    close: bool = False,
) -> web.StreamResponse:
    """Half the latency before the headers (time to first token), the rest spread over the body."""
    sse = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    response = web.StreamResponse(headers={**headers, **sse})
    if close:
        response.force_close()
    if latency_s:
        await asyncio.sleep(latency_s / 2)
    await response.prepare(request)
    if not latency_s:
        await response.write(b"".join(frames))
    else:
        step = -(-len(frames) // MAX_WRITES)
        bursts = [b"".join(frames[i : i + step]) for i in range(0, len(frames), step)]
        for burst in bursts:
            await asyncio.sleep(latency_s / 2 / len(bursts))
            await response.write(burst)
    await response.write_eof()
    return response


async def truncated(request: web.Request, payload: bytes, headers: dict[str, str]) -> web.StreamResponse:
    """200 headers promising the whole body, half of it, then a dropped connection."""
    response = web.StreamResponse(
        headers={**headers, "Content-Type": JSON, "Content-Length": str(len(payload))}
    )
    await response.prepare(request)
    await response.write(payload[: len(payload) // 2])
    if request.transport is not None:
        request.transport.close()
    return response
