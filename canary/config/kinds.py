"""Which kind a canary is: what its keys say, unless `kind:` says it.

`tools:` (or `tool_results:`) means tool_call, `turns:` means multi_turn, otherwise single. An
explicit `kind:` that contradicts the keys is a one-line hint naming the key, not the "unknown key"
pydantic would report for the key that does not belong to the declared kind."""

from __future__ import annotations

from typing import Any

from canary.config.models import CANARY_KINDS
from canary.config.yamlfile import Loc, YamlDoc, format_loc
from canary.errors import FileError

KINDS = tuple(CANARY_KINDS)


def implied_kind(data: dict[str, Any]) -> tuple[str, str | None]:
    """(kind, the key that implies it) from the keys alone."""
    for key, kind in (("tools", "tool_call"), ("tool_results", "tool_call"), ("turns", "multi_turn")):
        if key in data:
            return kind, key
    return "single", None


def canary_kind(data: dict[str, Any], doc: YamlDoc, prefix: Loc) -> str:
    """The canary's kind, or a FileError saying which key contradicts the declared one."""
    if "turns" in data and ("tools" in data or "tool_results" in data):
        other = "tools" if "tools" in data else "tool_results"
        loc = (*prefix, "turns")
        raise FileError(
            doc.path,
            doc.line_of(loc),
            format_loc(loc),
            f"a canary has `turns:` (multi_turn) or `{other}:` (tool_call), not both",
            "conversations with tools are not supported: split it into two canaries",
        )
    implied, key = implied_kind(data)
    if "kind" not in data:
        return implied
    kind = data["kind"]
    loc = (*prefix, "kind")
    where = (doc.path, doc.line_of(loc), format_loc(loc))
    if kind not in KINDS:
        raise FileError(*where, f"unknown kind `{kind}`", f"use one of: {', '.join(KINDS)}, or drop kind")
    if kind == implied:
        return kind
    if key is not None:
        raise FileError(*where, f"{kind} but the canary has `{key}:`; use kind: {implied} or drop kind")
    if kind == "multi_turn":
        fix = "write the conversation under `turns:`, or use kind: single or drop kind"
        raise FileError(*where, f"multi_turn but the canary has no `turns:`; {fix}")
    fix = "declare the tools under `tools:`, or use kind: single or drop kind"
    raise FileError(*where, f"tool_call but the canary has no `tools:`; {fix}")
