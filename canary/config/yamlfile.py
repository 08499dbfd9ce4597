"""Safe YAML loading that remembers where every key and item came from.

Pydantic reports *which* field is wrong; users need *where*. We compose the node tree
ourselves so that every mapping key and sequence item maps to its 1-based line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from canary.errors import FileError

Loc = tuple[str | int, ...]


@dataclass
class YamlDoc:
    """Parsed YAML data plus a map from field paths to source lines."""

    path: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """Line of the deepest known prefix of `loc` (pydantic error locations)."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)

    def error(self, loc: Sequence[str | int], problem: str, hint: str | None = None, **kw: Any) -> FileError:
        return FileError(self.path, self.line_of(loc), format_loc(loc) or None, problem, hint, **kw)


def format_loc(loc: Sequence[str | int]) -> str:
    """`('scorers', 0, 'tool_call', 'args')` -> `scorers[0].tool_call.args`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: str) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise FileError(
                    path, key_node.start_mark.line + 1, format_loc((*loc, key)), "duplicate key",
                    "each key may appear once in a mapping",
                )
            seen.add(key)
            lines[(*loc, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*loc, key), lines, path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*loc, index)] = item.start_mark.line + 1
            _walk(item, (*loc, index), lines, path)


def parse_yaml(text: str, path: str) -> YamlDoc:
    """Parse one YAML document with safe constructors only."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDoc(path, None, {})
        lines: dict[Loc, int] = {}
        _walk(node, (), lines, path)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise FileError(path, line, None, f"invalid YAML: {problem}", "check indentation and quoting") from None
    except yaml.YAMLError as exc:
        raise FileError(path, None, None, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return YamlDoc(path, data, lines)


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
