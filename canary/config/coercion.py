"""Refuse a YAML reading that would silently change what a canary expects.

PyYAML reads YAML 1.1: unquoted `1.10` is the number 1.1, `012` is 10 (octal), `0x1F` is 31,
`yes`/`no`/`on`/`off` are booleans, `2026-03-01` is a date and `~` is null. Where canary expects
text (an expected answer, a prompt, an id) such a reading turns `exact: 1.10` into "1.1", so the
file is refused instead, with the line and the quoted form to write. YAML 1.2 readers (editors,
linters, other tools) read `1e3` as the number 1000, so that is refused too.

What a field expects is read from the pydantic annotations of the config models and of each
scorer's `Args`:
- text (`str`): any reading other than the typed text is refused; a scorer's options take a plain
  number as its text only when it reads back exactly as typed (`contains: 42`, `exact: 3.5`);
- numbers, booleans, dates: taken as read, unless YAML 1.1 and 1.2 disagree on the number (`012`);
- free JSON (`Any`: tool arguments, schemas, tool results, params): dates (JSON has none), the
  YAML 1.1-only booleans `yes`/`no`/`on`/`off`, and numbers the two YAML versions read
  differently are refused: a model's JSON can never equal them."""

from __future__ import annotations

import math
import re
import types
import typing
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel

from canary.config.yamlfile import Loc, Scalar, YamlDoc, format_loc
from canary.errors import FileError

# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution)
_INT12 = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT12 = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INF12 = re.compile(r"[-+]?\.(?:inf|Inf|INF)")
_NAN12 = re.compile(r"\.(?:nan|NaN|NAN)")
_BOOL12 = {"true", "True", "TRUE", "false", "False", "FALSE"}

Expect = Literal["text", "loose_text", "typed", "json", "unknown"]


def yaml11_value(scalar: Scalar) -> Any:
    """What PyYAML made of the scalar."""
    import yaml

    return yaml.safe_load(scalar.text)


def yaml12_value(text: str) -> tuple[bool, Any]:
    """(True, value) if YAML 1.2's core schema reads `text` as something other than a string."""
    if text in ("", "~", "null", "Null", "NULL"):
        return True, None
    if text in _BOOL12:
        return True, text.lower() == "true"
    if _INT12.fullmatch(text):
        if text.startswith(("0o", "0x")):
            return True, int(text[2:], 8 if text[1] == "o" else 16)
        return True, int(text)
    if _FLOAT12.fullmatch(text):
        return True, float(text)
    if _INF12.fullmatch(text):
        return True, -math.inf if text.startswith("-") else math.inf
    if _NAN12.fullmatch(text):
        return True, math.nan
    return False, text


def describe(scalar: Scalar, value: Any = None, *, known: bool = False) -> str:
    """`the number 1.1`, `the boolean false`, `null (no value)`, `the date 2026-03-01`."""
    if not known:
        value = yaml11_value(scalar)
    if value is None:
        return "null (no value)"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, datetime):
        return "a timestamp"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, int | float):
        return f"the number {_num(value)}"
    return f"the text {value!r}"


def _num(value: float) -> str:
    return str(value)


# --------------------------------------------------------------------------- what a field expects


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _members(annotation: Any) -> list[Any]:
    annotation = _strip(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out += _members(arg)
        return out
    return [annotation]


def _field(model: type[BaseModel], name: str | int) -> Any:
    for key, info in model.model_fields.items():
        if name in (key, info.alias):
            return info.annotation
    return None


def expectation(model: type[BaseModel], rest: Loc) -> Expect:
    """What the field at `rest` (relative to `model`) expects of a scalar."""
    return _expect(model, rest, loose=False)


def _expect(annotation: Any, rest: Loc, *, loose: bool) -> Expect:
    members = [m for m in _members(annotation) if m is not type(None)]
    if any(m is Any or m is object for m in members):
        return "json"
    if not rest:
        leaf = []
        for m in members:
            origin = typing.get_origin(m)
            if origin in (list, tuple, set, frozenset):  # a bare value where a list is taken
                leaf += [a for a in _members(typing.get_args(m)[0]) if a is not type(None)]
            else:
                leaf.append(m)
        if any(m is Any for m in leaf):
            return "json"
        if leaf and all(m is str for m in leaf):
            return "loose_text" if loose else "text"
        return "typed" if leaf else "unknown"
    head, tail = rest[0], rest[1:]
    for m in members:
        origin = typing.get_origin(m)
        if isinstance(m, type) and issubclass(m, BaseModel) and isinstance(head, str):
            inner = _field(m, head)
            if inner is not None:
                return _expect(inner, tail, loose=bool(m.model_config.get("coerce_numbers_to_str")))
        elif origin in (list, tuple) and isinstance(head, int):
            return _expect(typing.get_args(m)[0], tail, loose=loose)
        elif origin is dict and isinstance(head, str):
            return _expect(typing.get_args(m)[1], tail, loose=loose)
    return "unknown"


# --------------------------------------------------------------------------- the rules


def problem(scalar: Scalar, expect: Expect) -> tuple[str, str] | None:
    """(problem, hint) if reading `scalar` as YAML did would change what the user meant."""
    if expect in ("unknown",):
        return None
    text = scalar.text
    quote = f'quote it: "{text}"'
    is12, value12 = yaml12_value(text)
    if scalar.tag == "str":  # PyYAML kept the text; YAML 1.2 readers would not
        if not is12 or value12 is None or isinstance(value12, bool):
            return None
        if expect in ("text", "loose_text", "json"):
            return f"YAML 1.2 reads {text} as the number {_num(value12)}", quote
        return None
    value11 = yaml11_value(scalar)
    if expect in ("text", "loose_text"):
        if value11 is None and not text:
            return None  # `key:` with nothing: pydantic says the field is missing
        number = isinstance(value11, int | float) and not isinstance(value11, bool)
        if expect == "loose_text" and number and str(value11) == text and (not is12 or str(value12) == text):
            return None  # `contains: 42` means "42"
        return f"YAML read {text} as {describe(scalar, value11, known=True)}", quote
    if scalar.tag in ("int", "float") and not _same_number(text, value11, is12, value12):
        also = f" (YAML 1.2: {_num(value12)})" if is12 else ""
        alt = f"{_num(value12)} or {_num(value11)}" if is12 else _num(value11)
        return (
            f"YAML read {text} as the number {_num(value11)}{also}",
            f"write {alt} so every YAML reader agrees",
        )
    if expect == "json":
        if scalar.tag == "timestamp":
            return (
                f"YAML read {text} as {describe(scalar, value11, known=True)}, which JSON has no form for",
                quote,
            )
        if scalar.tag == "bool" and text not in _BOOL12:
            return (
                f"YAML read {text} as {describe(scalar, value11, known=True)}",
                f"write {'true' if value11 else 'false'} for a boolean, or {quote}",
            )
    return None


def _same_number(text: str, value11: Any, is12: bool, value12: Any) -> bool:
    if is12:
        return value12 == value11 or (isinstance(value11, float) and math.isnan(value11))
    try:
        return float(text.replace("_", "")) == value11  # `1_000`: same number to every reader
    except ValueError:
        return False  # `1:30` (base 60), `0b101`


def _raise(doc: YamlDoc, loc: Loc, scalar: Scalar, found: tuple[str, str]) -> None:
    raise FileError(doc.path, scalar.line, format_loc(loc) or None, f"{found[0]}; {found[1]}")


def check_model_fields(
    doc: YamlDoc, model: type[BaseModel], prefix: Loc = (), *, skip: tuple[str, ...] = ()
) -> None:
    """Refuse misread scalars under `prefix`, whose data validates as `model`. Fields named in
    `skip` (directly under the prefix) are checked elsewhere (a canary's scorers)."""
    inverse = {orig: new for new, orig in doc.moved.items()}
    for loc, scalar in doc.scalars.items():
        if loc[: len(prefix)] != prefix:
            continue
        rest = _normalised(loc[len(prefix) :], inverse, prefix)
        if rest[:1] and rest[0] in skip:
            continue
        found = problem(scalar, expectation(model, rest))
        if found:
            _raise(doc, loc, scalar, found)


def _normalised(rest: Loc, inverse: dict[Loc, Loc], prefix: Loc) -> Loc:
    """The data path of a field the user wrote inside a vendor form (see YamlDoc.moved)."""
    full = (*prefix, *rest)
    for cut in range(len(full), len(prefix), -1):
        if full[:cut] in inverse:
            return (*inverse[full[:cut]], *full[cut:])[len(prefix) :]
    return rest


def check_scorer_entry(doc: YamlDoc, registry: Any, loc: Loc, entry: Any) -> None:
    """Refuse misread scalars inside one `{scorer: options}` entry at `loc` (and the entries
    nested in `all_of` / `any_of`)."""
    from canary.scoring.builtins import CombinatorArgs

    if not isinstance(entry, dict) or len(entry) != 1:
        return
    ((name, raw),) = entry.items()
    cls = registry.get(name) if isinstance(name, str) else None
    if cls is None:
        return
    base = (*loc, name)
    if isinstance(cls.Args, type) and issubclass(cls.Args, CombinatorArgs):
        entries, at = (raw.get("scorers"), (*base, "scorers")) if isinstance(raw, dict) else (raw, base)
        for i, nested in enumerate(entries if isinstance(entries, list) else []):
            check_scorer_entry(doc, registry, (*at, i), nested)
        return
    loose = bool(cls.Args.model_config.get("coerce_numbers_to_str"))
    shorthand = getattr(cls, "shorthand", None)
    for where, scalar in doc.scalars.items():
        if where[: len(base)] != base:
            continue
        rest = where[len(base) :]
        if rest[:1] == ("turns",):
            continue  # turn numbers or names: the registry checks them
        if shorthand and (not rest or isinstance(rest[0], int)):
            rest = (shorthand, *rest)  # `contains: 1.10` / `contains: [a, 1.10]`
        found = problem(scalar, _expect(cls.Args, rest, loose=loose))
        if found:
            _raise(doc, where, scalar, found)
