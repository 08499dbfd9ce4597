"""Safe YAML loading that remembers where every key and item came from.

Pydantic reports *which* field is wrong; users need *where*. We compose the node tree
ourselves so that every mapping key and sequence item maps to its 1-based line.

PyYAML reads YAML 1.1, where an unquoted `1.10` is the number 1.1, `012` is 10 and `no` is false.
So that canary.config.coercion can refuse such a reading where text was meant, the loader also
keeps, for every plain (unquoted, untagged) scalar that is not simply text, what was typed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from canary.errors import FileError

Loc = tuple[str | int, ...]


STR_TAG = "tag:yaml.org,2002:str"
_KEPT_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float", "null", "timestamp")}


@dataclass(frozen=True)
class Scalar:
    """A plain scalar as typed, and the YAML 1.1 type PyYAML gave it (`int`, `bool`, `str`...)."""

    text: str
    tag: str
    line: int


@dataclass
class YamlDoc:
    """Parsed YAML data plus a map from field paths to source lines.

    `scalars` holds the plain scalars that YAML may not have read as text, by field path.
    `moved` maps a path in the data after a vendor form was rewritten to canary's own form
    (see canary.config.tools) back to where the user wrote it, so errors point at their text."""

    path: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    scalars: dict[Loc, Scalar] = field(default_factory=dict)
    moved: dict[Loc, Loc] = field(default_factory=dict)

    def written(self, loc: Sequence[str | int]) -> Loc:
        """Where the user wrote the field at `loc` (differs only inside a rewritten vendor form)."""
        loc = tuple(loc)
        for cut in range(len(loc), 0, -1):
            if loc[:cut] in self.moved:
                return (*self.moved[loc[:cut]], *loc[cut:])
        return loc

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """Line of the deepest known prefix of `loc` (pydantic error locations)."""
        loc = self.written(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)

    def error(self, loc: Sequence[str | int], problem: str, hint: str | None = None, **kw: Any) -> FileError:
        return FileError(
            self.path, self.line_of(loc), format_loc(self.written(loc)) or None, problem, hint, **kw
        )


def format_loc(loc: Sequence[str | int]) -> str:
    """`('scorers', 0, 'tool_call', 'args')` -> `scorers[0].tool_call.args`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class _Loader(yaml.SafeLoader):
    """SafeLoader that marks scalars whose type YAML guessed (plain style, no explicit tag)."""

    def compose_scalar_node(self, anchor: Any) -> yaml.ScalarNode:
        event = self.peek_event()
        node = super().compose_scalar_node(anchor)
        node.canary_guessed = event.style is None and event.tag in (None, "!")  # type: ignore[attr-defined]
        return node


def _guessed(node: yaml.Node) -> Scalar | None:
    if not (isinstance(node, yaml.ScalarNode) and getattr(node, "canary_guessed", False)):
        return None
    if node.tag in _KEPT_TAGS or (node.tag == STR_TAG and _maybe_number(node.value)):
        return Scalar(node.value, node.tag.rsplit(":", 1)[-1], node.start_mark.line + 1)
    return None


def _maybe_number(text: str) -> bool:
    """Cheap pre-filter for text YAML 1.2 might read as a number (`1e3`, `0o17`)."""
    return bool(text) and (text[0].isdigit() or text[0] in "+-.") and len(text) < 64


def _walk(node: yaml.Node, loc: Loc, doc: YamlDoc) -> None:
    doc.lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise FileError(
                    doc.path,
                    line,
                    format_loc((*loc, key)),
                    "duplicate key",
                    "each key may appear once in a mapping",
                )
            seen.add(key)
            typed = _guessed(key_node)
            if typed is not None and typed.tag != "str":
                # Every mapping canary reads is a model or a JSON object: keys are always text.
                from canary.config.coercion import describe

                raise FileError(
                    doc.path,
                    line,
                    format_loc((*loc, key)),
                    f'YAML read the key {key} as {describe(typed)}; quote it: "{key}"',
                )
            doc.lines[(*loc, key)] = line
            _walk(value_node, (*loc, key), doc)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            doc.lines[(*loc, index)] = item.start_mark.line + 1
            _walk(item, (*loc, index), doc)
    elif (typed := _guessed(node)) is not None:
        doc.scalars[loc] = typed


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def syntax_error(path: str, exc: yaml.MarkedYAMLError) -> FileError:
    """One line naming where parsing broke and, if PyYAML says, where the open construct began
    (the `[` that was never closed is usually the mistake, not the line where parsing gave up)."""
    problem = (exc.problem or "").strip()
    context = (exc.context or "").strip()
    mark = exc.problem_mark or exc.context_mark
    text = "invalid YAML: " + (problem or context or "cannot parse")
    if exc.problem_mark is not None and problem:
        text += f" at {_at(exc.problem_mark)}"
    if context and exc.context_mark is not None and problem:
        text += f", {context} that starts at {_at(exc.context_mark)}"
    return FileError(path, mark.line + 1 if mark else None, None, text, "check indentation and quoting")


def parse_yaml(text: str, path: str) -> YamlDoc:
    """Parse one YAML document with safe constructors only."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDoc(path, None, {})
        doc = YamlDoc(path, None)
        _walk(node, (), doc)
        doc.data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise syntax_error(path, exc) from None
    except yaml.YAMLError as exc:
        raise FileError(path, None, None, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return doc


def load_yaml(path: Path, display: str | None = None) -> YamlDoc:
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileError(shown, None, None, "file not found", exit_code=66) from None
    except UnicodeDecodeError as exc:
        raise FileError(shown, None, None, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise FileError(shown, None, None, f"cannot read: {exc.strerror}", exit_code=66) from None
    return parse_yaml(text, shown)
