"""The simulator's 200s that are not the vendor's shape, and replies too big to hold.

Kept apart from app.py so each fault's bytes are easy to read: `malformed` (`[]`, `null`, an
object missing required fields, bytes that are not UTF-8), `html` (a proxy's error page, which
echoes the request's credentials as some debugging proxies do, so redaction is tested),
`no_stop` (a stream without its closing event) and `huge` (an answer of `size` characters,
generated and written a piece at a time so four 100 MB answers do not cost the simulator 400 MB)."""

from __future__ import annotations

from aiohttp import web

from canary.config.models import SimFault
from canary.sim.replies import HUGE_MARK, huge_pieces
from canary.sim.request import SimRequest
from canary.sim.state import Effective
from canary.sim.wire import Wire, dumps, new_id

JSON = "application/json"
SSE = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
HTML_PAGE = """<!DOCTYPE html>
<html><head><title>502 Bad Gateway</title></head>
<body><h1>502 Bad Gateway</h1><p>The upstream server did not answer in time.</p>
<pre>proxy debug: {auth}</pre>
<hr><address>nginx (simulated)</address></body></html>
"""
UNDECODABLE = b'{"id": "\xff\xfe\xc3(", "type": "message"}'


def retry_header(fault: SimFault | None) -> dict[str, str]:
    """`x-should-retry` for a fault that asks for it (on any status, 200 included)."""
    if fault is None or fault.should_retry is None:
        return {}
    return {"x-should-retry": "true" if fault.should_retry else "false"}


def malformed_body(wire: Wire, fault: SimFault, req: SimRequest) -> bytes:
    if fault.body == "null":
        return b"null"
    if fault.body == "undecodable":
        return UNDECODABLE
    if fault.body == "missing_fields":
        if wire.request_id_header == "request-id":  # Anthropic: a message without content
            return dumps(
                {"id": new_id("msg_sim_"), "type": "message", "role": "assistant", "model": req.model}
            )
        return dumps({"id": new_id("chatcmpl-sim"), "object": "chat.completion", "model": req.model})
    return b"[]"


def malformed_frames(wire: Wire, fault: SimFault, req: SimRequest) -> list[bytes]:
    """The stream version: events whose data is the malformed payload."""
    anthropic = wire.request_id_header == "request-id"
    if fault.body == "missing_fields":
        if anthropic:
            start = dumps({"type": "message_start"})  # no `message`
            return [b"event: message_start\ndata: " + start + b"\n\n"]
        chunk = dumps({"id": new_id("chatcmpl-sim"), "object": "chat.completion.chunk", "choices": "none"})
        return [b"data: " + chunk + b"\n\n", b"data: [DONE]\n\n"]
    data = malformed_body(wire, fault, req)
    name = b"event: message_start\n" if anthropic else b""
    return [name + b"data: " + data + b"\n\n"]


async def respond(
    request: web.Request,
    wire: Wire,
    fault: SimFault,
    req: SimRequest,
    eff: Effective,
    headers: dict[str, str],
) -> web.StreamResponse:
    """A 200 carrying a `malformed` or `html` body, for streaming and whole requests alike."""
    if fault.kind == "html":
        auth = request.headers.get("authorization") or request.headers.get("x-api-key") or "-"
        page = HTML_PAGE.format(auth=f"Authorization: {auth}").encode()
        return web.Response(body=page, headers={**headers, "Content-Type": "text/html; charset=utf-8"})
    if req.stream:
        response = web.StreamResponse(headers={**headers, **SSE})
        await response.prepare(request)
        await response.write(b"".join(malformed_frames(wire, fault, req)))
        await response.write_eof()
        return response
    return web.Response(body=malformed_body(wire, fault, req), headers={**headers, "Content-Type": JSON})


def without_closing(frames: list[bytes]) -> list[bytes]:
    """A stream that ends cleanly but early: no `message_stop` (Anthropic), no finish_reason,
    usage chunk or `[DONE]` (OpenAI)."""
    closing = (b"event: message_stop", b"data: [DONE]")
    return [
        f
        for f in frames
        if not f.startswith(closing) and b'"finish_reason":"' not in f and b'"choices":[]' not in f
    ]


def _escaped(piece: str) -> bytes:
    return dumps(piece)[1:-1]  # the JSON string's content, without its quotes


async def huge_whole(
    request: web.Request, payload: bytes, size: int, headers: dict[str, str]
) -> web.StreamResponse:
    """The whole-body reply with the answer's `size` characters written a piece at a time."""
    head, _, tail = payload.partition(HUGE_MARK.encode())
    response = web.StreamResponse(headers={**headers, "Content-Type": JSON})
    await response.prepare(request)
    await response.write(head)
    for piece in huge_pieces(size):
        await response.write(_escaped(piece))
    await response.write(tail)
    await response.write_eof()
    return response


async def huge_stream(
    request: web.Request, frames: list[bytes], size: int, headers: dict[str, str]
) -> web.StreamResponse:
    """The stream with the one delta carrying the mark replaced by many ordinary-sized deltas."""
    response = web.StreamResponse(headers={**headers, **SSE})
    await response.prepare(request)
    mark = HUGE_MARK.encode()
    for frame in frames:
        if mark not in frame:
            await response.write(frame)
            continue
        for piece in huge_pieces(size):
            await response.write(frame.replace(mark, _escaped(piece)))
    await response.write_eof()
    return response
