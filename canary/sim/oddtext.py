"""The `odd_text` fault: a 200 whose text cannot be stored or shown as sent.

The scripted answer is kept (so the sample can still pass) and an odd piece is appended to
it, to every string argument of a tool call (plus a `note` argument) and to the served-model
name and fingerprint. `variant` picks the piece:

- `surrogate`: a lone surrogate, sent as the JSON escape `\\ud800` (valid JSON, decodes to a
  Python string that UTF-8 cannot encode);
- `nul`: NUL, sent as `\\u0000` (PostgreSQL text cannot hold it);
- `invalid_utf8`: the raw bytes `0xff 0xfe` inside the JSON string (not UTF-8 at all);
- `bidi`: right-to-left override and isolate controls (storable; the report must show them);
- `tool_name`: a lone surrogate appended to the tool call's name as well (a text answer gets
  it in the text), so the call names no tool the canary knows;
- `huge_usage`: no odd text, but a usage count of 10**20 output tokens, beyond any integer
  column: a sample the database refuses.

Every variant also sends a request id carrying a bidi override. JSON cannot carry a lone
surrogate or raw bytes through `json.dumps`, so the text holds private-use placeholders that
`encode` swaps for the wire bytes after the body or SSE frame is serialised."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from canary.config.models import SimFault
from canary.sim.replies import Content, Reply
from canary.sim.state import Effective

SURROGATE_MARK = "\ue000"  # becomes the 6 bytes \ud800 (a JSON escape) on the wire
BAD_BYTES_MARK = "\ue001"  # becomes the raw bytes ff fe on the wire
_WIRE = {SURROGATE_MARK.encode(): b"\\ud800", BAD_BYTES_MARK.encode(): b"\xff\xfe"}
PIECES = {
    "surrogate": SURROGATE_MARK,
    "nul": "\x00",
    "invalid_utf8": BAD_BYTES_MARK,
    "bidi": "\u202e\u2066evil\u2069\u202c",
    "tool_name": SURROGATE_MARK,
    "huge_usage": "",
}
HUGE_USAGE = 10**20
REQUEST_ID_SUFFIX = "\u202e"


def piece(fault: SimFault) -> str:
    return PIECES[fault.variant]


def content(fault: SimFault, scripted: Content) -> Content:
    """The scripted answer with the odd piece appended to its text or its call's arguments."""
    odd = piece(fault)
    if not odd:
        return scripted
    if scripted.call_name is None:
        return dataclasses.replace(scripted, text=f"{scripted.text} {odd}")
    try:
        arguments: Any = json.loads(scripted.raw_arguments or "{}")
    except ValueError:
        arguments = {}
    if not isinstance(arguments, dict):
        arguments = {}
    arguments = {k: f"{v}{odd}" if isinstance(v, str) else v for k, v in arguments.items()}
    arguments["note"] = f"odd {odd} text"
    name = f"{scripted.call_name}{odd}" if fault.variant == "tool_name" else scripted.call_name
    return dataclasses.replace(
        scripted, call_name=name, raw_arguments=json.dumps(arguments, ensure_ascii=False)
    )


def effective(fault: SimFault, eff: Effective, model: str) -> Effective:
    odd = piece(fault)
    if not odd:
        return eff
    return dataclasses.replace(
        eff,
        served_model=f"{eff.served_model or model}{odd}",
        fingerprint=f"{eff.fingerprint or 'fp_sim'}{odd}",
    )


def reply(fault: SimFault, r: Reply) -> Reply:
    return dataclasses.replace(r, output_tokens=HUGE_USAGE) if fault.variant == "huge_usage" else r


def encode(data: bytes) -> bytes:
    """Swap the placeholders in a serialised body or frame for their wire bytes."""
    for mark, wire in _WIRE.items():
        if mark in data:
            data = data.replace(mark, wire)
    return data
