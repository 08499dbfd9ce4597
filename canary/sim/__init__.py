"""A loopback server speaking the Anthropic Messages and OpenAI Chat Completions APIs.

The server parts are loaded on first use so that building a script does not import aiohttp."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from canary.sim.script import SimRule, SimScript, script_from_project

if TYPE_CHECKING:
    from canary.sim.server import SimServer, serve_forever

__all__ = ["SimRule", "SimScript", "SimServer", "script_from_project", "serve_forever"]


def __getattr__(name: str) -> Any:
    if name in ("SimServer", "serve_forever"):
        from canary.sim import server

        return getattr(server, name)
    raise AttributeError(name)
