"""The contract each vendor format implements, and the byte-level helpers they share."""

from __future__ import annotations

import json
import secrets
from typing import Any, Protocol

from canary.sim.replies import Reply
from canary.sim.request import SimRequest
from canary.sim.state import Effective


class Wire(Protocol):
    """One vendor's HTTP dialect: request parsing and every response shape the simulator sends."""

    request_id_header: str

    def parse(self, body: dict[str, Any]) -> SimRequest: ...

    def error(self, status: int, message: str) -> dict[str, Any]: ...

    def quota(self) -> dict[str, Any]: ...

    def not_found(self, model: str) -> dict[str, Any]: ...

    def response(self, reply: Reply, req: SimRequest, eff: Effective) -> dict[str, Any]: ...

    def frames(self, reply: Reply, req: SimRequest, eff: Effective, *, broken: bool = False) -> list[bytes]:
        """SSE frames of a streamed reply; `broken` stops after the first delta with an error event."""
        ...


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def text_len(value: Any) -> int:
    """Characters of text in a string or a list of text blocks/parts (other block types count zero)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(len(b["text"]) for b in value if isinstance(b, dict) and isinstance(b.get("text"), str))
    return 0


def block_text(value: Any) -> str | None:
    """A message's text (blocks joined by newlines), or None when it carries no text block."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = [
            b["text"]
            for b in value
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        ]
        return "\n".join(texts) if texts else None
    return None
