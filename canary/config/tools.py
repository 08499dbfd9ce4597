"""Tool declarations as people already write them, rewritten to canary's own form.

canary's own form is `{name, description, parameters}`. A tool_call canary may also declare its
tools as they appear in an Anthropic request (`{name, description, input_schema}`, optionally
`type: custom`) or in an OpenAI one: Chat Completions' `{type: function, function: {name,
description, parameters, strict}}` or the Responses API's flat `{type: function, name, description,
parameters, strict}`. They are rewritten before validation, so every form gives the same canary
and the same content hash: pasting a tool list from application code does not start a new series.

`strict: true` is refused rather than dropped: canary sends the schema as written to both vendors
and does not ask OpenAI for strict schema adherence, so accepting it would test something else."""

from __future__ import annotations

from typing import Any

from canary.config.yamlfile import Loc, YamlDoc, format_loc
from canary.errors import FileError

OPENAI_FORM = "OpenAI's form is {type: function, function: {name, description, parameters}}"


def normalise_tools(data: dict[str, Any], doc: YamlDoc, prefix: Loc) -> dict[str, Any]:
    """`data` with its `tools:` list in canary's form; `doc.moved` learns where each field was."""
    tools = data.get("tools")
    if not isinstance(tools, list):
        return data
    return {**data, "tools": [_one(tool, doc, (*prefix, "tools", i)) for i, tool in enumerate(tools)]}


def _one(tool: Any, doc: YamlDoc, loc: Loc) -> Any:
    if not isinstance(tool, dict):
        return tool
    if "function" in tool:
        return _openai_chat(tool, doc, loc)
    if tool.get("type") == "function":
        return _drop_strict(_without(tool, "type"), doc, loc)
    if "input_schema" in tool:
        return _anthropic(tool, doc, loc)
    return tool


def _openai_chat(tool: dict[str, Any], doc: YamlDoc, loc: Loc) -> dict[str, Any]:
    for key in tool:
        if key not in ("type", "function"):
            raise _error(doc, (*loc, key), f"unknown key `{key}` beside `function`", OPENAI_FORM)
    if tool.get("type", "function") != "function":
        raise _error(
            doc, (*loc, "type"), f"unknown tool type `{tool['type']}`", "OpenAI tools have type: function"
        )
    function = tool["function"]
    where = (*loc, "function")
    if not isinstance(function, dict):
        raise _error(doc, where, "expected a mapping", OPENAI_FORM)
    function = _drop_strict(function, doc, where)
    for key in function:
        doc.moved[(*loc, key)] = (*where, key)
    return dict(function)


def _anthropic(tool: dict[str, Any], doc: YamlDoc, loc: Loc) -> dict[str, Any]:
    if "parameters" in tool:
        raise _error(
            doc,
            (*loc, "parameters"),
            "both `parameters` and `input_schema` given",
            "give the JSON Schema once: `parameters` (canary, OpenAI) or `input_schema` (Anthropic)",
        )
    if tool.get("type", "custom") != "custom":
        raise _error(
            doc,
            (*loc, "type"),
            f"unsupported tool type `{tool['type']}`",
            "only custom tools (name, description, input_schema) can be declared",
        )
    out = {
        ("parameters" if key == "input_schema" else key): value
        for key, value in tool.items()
        if key != "type"
    }
    doc.moved[(*loc, "parameters")] = (*loc, "input_schema")
    return out


def _drop_strict(tool: dict[str, Any], doc: YamlDoc, loc: Loc) -> dict[str, Any]:
    if "strict" not in tool:
        return tool
    strict = tool["strict"]
    if strict is True:
        raise _error(
            doc,
            (*loc, "strict"),
            "strict: true is not supported",
            "remove `strict`: canary sends the schema as written, without OpenAI's strict mode",
        )
    if strict not in (False, None):
        raise _error(doc, (*loc, "strict"), "expected true or false")
    return _without(tool, "strict")


def _without(tool: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in tool.items() if k != key}


def _error(doc: YamlDoc, loc: Loc, problem: str, hint: str | None = None) -> FileError:
    return FileError(doc.path, doc.line_of(loc), format_loc(loc), problem, hint)
