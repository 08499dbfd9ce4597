"""The scorers every project has.

Reasons are read in reports by someone deciding whether a model regressed, so each one says
what was expected and quotes (at most ~80 characters of) what came back.

Empty replies: an empty (or whitespace-only) reply fails every scorer that looks for something
in the text, with the reason "empty reply", because an empty answer is the commonest silent
regression and must never pass by accident. Scorers that only forbid something pass it:
`not_contains`, `regex` with `must_match: false`, `no_tool_call`, and `length` unless a minimum
is set (an empty reply is within any maximum). Pair them with a positive scorer to catch empties.
`tool_call` ignores the text: the call is what it judges."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from canary.records import ToolCall
from canary.scoring.base import NoArgs, ScoreInput, Scorer, ScorerSpecError, Verdict
from canary.scoring.registry import BoundScorer, ScorerRegistry

QUOTE_CHARS = 80
EMPTY = Verdict(False, 0.0, "empty reply")


# --------------------------------------------------------------------------- helpers


def quote(text: str, limit: int = QUOTE_CHARS, *, tail: bool = False) -> str:
    """A short, one-line, double-quoted excerpt; `tail` keeps the end (for end-anchored checks)."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = "…" + flat[-(limit - 1) :] if tail else flat[: limit - 1] + "…"
    return f'"{flat}"'


def quote_around(text: str, start: int, end: int, limit: int = QUOTE_CHARS) -> str:
    """An excerpt centred on text[start:end], so a reason shows where a match was."""
    pad = max(0, (limit - (end - start)) // 2)
    lo, hi = max(0, start - pad), min(len(text), end + pad)
    excerpt = quote(text[lo:hi], limit)
    if lo > 0:
        excerpt = '"…' + excerpt[1:]
    if hi < len(text) and not excerpt.endswith('…"'):
        excerpt = excerpt[:-1] + '…"'
    return excerpt


def quote_list(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(quote(i, 40) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def is_empty(text: str) -> bool:
    return not text.strip()


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str | int | float) and not isinstance(value, bool) else value


Needles = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1), BeforeValidator(_listify)]
Schema = Annotated[dict[str, Any] | None, Field(alias="schema")]


class Options(BaseModel):
    """Scorer options: unknown keys rejected; YAML numbers accepted where text is expected."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True, populate_by_name=True)


def check_schema(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """A bad schema is the canary author's mistake: report it when the file loads, not per reply."""
    if schema is None:
        return None
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"invalid JSON Schema: {_short(exc.message, 120)}") from None
    return schema


def make_validator(schema: dict[str, Any] | None) -> Any:
    if schema is None:
        return None
    from jsonschema.validators import validator_for

    return validator_for(schema)(schema)


def schema_problem(validator: Any, instance: Any) -> str | None:
    """The most relevant schema violation as `at $.path: message`, or None."""
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(instance))
    if error is None:
        return None
    return f"at {error.json_path}: {_short(error.message, 120)}"


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _dump(value: Any) -> str:
    return _short(json.dumps(value, ensure_ascii=False, sort_keys=True), 60)


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's ==, true is not 1 (while 1 equals 1.0)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _fmt(x: float) -> str:
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


def _fold(text: str, case_insensitive: bool) -> str:
    return text.casefold() if case_insensitive else text


# --------------------------------------------------------------------------- text


class ExactArgs(Options):
    value: str
    case_insensitive: bool = False
    strip: bool = True


class Exact(Scorer):
    """The whole reply equals `value`."""

    name = "exact"
    Args = ExactArgs
    shorthand: ClassVar[str] = "value"

    def score(self, inp: ScoreInput) -> Verdict:
        a: ExactArgs = self.args  # type: ignore[assignment]
        got, want = (inp.text.strip(), a.value.strip()) if a.strip else (inp.text, a.value)
        if not got and want:
            return EMPTY
        if _fold(got, a.case_insensitive) == _fold(want, a.case_insensitive):
            return Verdict(True, 1.0, f"reply equals {quote(want)}")
        return Verdict(False, 0.0, f"expected {quote(want, 40)}, got {quote(got)}")


class ContainsArgs(Options):
    all: Needles | None = None
    any: Needles | None = None
    case_insensitive: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> ContainsArgs:
        if (self.all is None) == (self.any is None):
            raise ValueError("give exactly one of `all` (every string must appear) or `any` (one is enough)")
        return self


class Contains(Scorer):
    """Substrings that must appear; score = fraction found for `all`."""

    name = "contains"
    Args = ContainsArgs
    shorthand: ClassVar[str] = "any"

    def score(self, inp: ScoreInput) -> Verdict:
        a: ContainsArgs = self.args  # type: ignore[assignment]
        if is_empty(inp.text):
            return EMPTY
        hay = _fold(inp.text, a.case_insensitive)
        needles = a.all if a.all is not None else a.any or []
        found = [n for n in needles if _fold(n, a.case_insensitive) in hay]
        if a.all is not None:
            missing = [n for n in needles if n not in found]
            score = len(found) / len(needles)
            if not missing:
                what = (
                    f"all {len(needles)}: {quote_list(needles)}"
                    if len(needles) > 1
                    else quote(needles[0], 40)
                )
                return Verdict(True, 1.0, f"found {what}")
            return Verdict(False, score, f"missing {quote_list(missing)} in {quote(inp.text)}")
        if found:
            return Verdict(True, 1.0, f"found {quote(found[0], 40)}")
        return Verdict(False, 0.0, f"none of {quote_list(needles)} in {quote(inp.text)}")


class NotContainsArgs(Options):
    any: Needles
    case_insensitive: bool = False


class NotContains(Scorer):
    """Substrings that must not appear (an empty reply passes: it contains none)."""

    name = "not_contains"
    Args = NotContainsArgs
    shorthand: ClassVar[str] = "any"

    def score(self, inp: ScoreInput) -> Verdict:
        a: NotContainsArgs = self.args  # type: ignore[assignment]
        hay = _fold(inp.text, a.case_insensitive)
        for needle in a.any:
            at = hay.find(_fold(needle, a.case_insensitive))
            if at >= 0:
                where = quote_around(inp.text, at, at + len(needle))
                return Verdict(False, 0.0, f"found forbidden {quote(needle, 40)} in {where}")
        return Verdict(True, 1.0, f"none of {quote_list(a.any)} present")


_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


class RegexArgs(Options):
    pattern: Annotated[str, Field(min_length=1)]
    flags: Annotated[list[str], BeforeValidator(lambda v: list(v) if isinstance(v, str) else v)] = []
    must_match: bool = True

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc.msg} at position {exc.pos}") from None
        return value

    @field_validator("flags")
    @classmethod
    def _known_flags(cls, value: list[str]) -> list[str]:
        for flag in value:
            if flag not in _FLAGS:
                raise ValueError(f"unknown regex flag `{flag}` (use i, m, s)")
        return value


class Regex(Scorer):
    """re.search semantics; `must_match: false` turns it into a forbidden pattern."""

    name = "regex"
    Args = RegexArgs
    shorthand: ClassVar[str] = "pattern"

    def __init__(self, args: RegexArgs, registry: ScorerRegistry) -> None:
        super().__init__(args, registry)
        flags = 0
        for flag in args.flags:
            flags |= _FLAGS[flag]
        self.rx = re.compile(args.pattern, flags)
        self.shown = "/" + _short(args.pattern, 60) + "/"

    def score(self, inp: ScoreInput) -> Verdict:
        a: RegexArgs = self.args  # type: ignore[assignment]
        match = self.rx.search(inp.text)
        if a.must_match:
            if is_empty(inp.text):
                return EMPTY
            if match:
                return Verdict(True, 1.0, f"{self.shown} matched {quote(match.group(0), 40)}")
            tail = a.pattern.endswith("$")
            return Verdict(False, 0.0, f"no match for {self.shown} in {quote(inp.text, tail=tail)}")
        if match:
            where = quote_around(inp.text, match.start(), match.end())
            return Verdict(False, 0.0, f"{self.shown} must not match, but matched {where}")
        return Verdict(True, 1.0, f"no match for {self.shown}, as required")


# --------------------------------------------------------------------------- structured


class JsonArgs(Options):
    schema_: Schema = None

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_schema(value)


_JSON_FENCE = re.compile(r"```json[^\S\n]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def parse_json_reply(text: str) -> tuple[bool, Any, str]:
    """(ok, value, problem): the whole reply, else its first ```json fenced block."""
    try:
        return True, json.loads(text), ""
    except ValueError as exc:
        whole = exc
    fence = _JSON_FENCE.search(text)
    if fence:
        try:
            return True, json.loads(fence.group(1)), ""
        except json.JSONDecodeError as exc:
            return (
                False,
                None,
                f"the ```json block is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})",
            )
    detail = whole.msg if isinstance(whole, json.JSONDecodeError) else str(whole)
    return False, None, f"reply is not valid JSON ({detail}): {quote(text)}"


class Json(Scorer):
    """The reply is JSON (optionally matching a JSON Schema)."""

    name = "json"
    Args = JsonArgs

    def __init__(self, args: JsonArgs, registry: ScorerRegistry) -> None:
        super().__init__(args, registry)
        self.validator = make_validator(args.schema_)

    def score(self, inp: ScoreInput) -> Verdict:
        if is_empty(inp.text):
            return EMPTY
        ok, value, problem = parse_json_reply(inp.text)
        if not ok:
            return Verdict(False, 0.0, problem)
        if self.validator is not None:
            mismatch = schema_problem(self.validator, value)
            if mismatch:
                return Verdict(False, 0.0, f"JSON does not match the schema {mismatch}")
            return Verdict(True, 1.0, "valid JSON matching the schema")
        return Verdict(True, 1.0, "valid JSON")


class ToolCallArgs(Options):
    name: str | None = None
    args: dict[str, Any] = {}
    schema_: Schema = None
    index: int | None = None

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_schema(value)

    @field_validator("index")
    @classmethod
    def _not_zero(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError("index is 1-based (1 = first call, -1 = last call)")
        return value


class ToolCallScorer(Scorer):
    """A tool was called with the expected name and (a subset of) arguments.

    `index` (1-based, negative from the end) pins which call must match; otherwise any may."""

    name = "tool_call"
    Args = ToolCallArgs
    shorthand: ClassVar[str] = "name"

    def __init__(self, args: ToolCallArgs, registry: ScorerRegistry) -> None:
        super().__init__(args, registry)
        self.validator = make_validator(args.schema_)

    def score(self, inp: ScoreInput) -> Verdict:
        a: ToolCallArgs = self.args  # type: ignore[assignment]
        calls = list(inp.tool_calls)
        if not calls:
            said = f"; replied {quote(inp.text)}" if not is_empty(inp.text) else ""
            return Verdict(False, 0.0, f"no tool was called{said}")
        names = ", ".join(f"`{c.name}`" for c in calls)
        if a.index is not None:
            i = a.index - 1 if a.index > 0 else len(calls) + a.index
            if not 0 <= i < len(calls):
                return Verdict(False, 0.0, f"no tool call #{a.index} ({len(calls)} made: {names})")
            calls = [calls[i]]
        if a.name is not None and all(c.name != a.name for c in calls):
            return Verdict(False, 0.0, f"called {names}, expected `{a.name}`")
        problems: list[str] = []
        for call in calls:
            if a.name is not None and call.name != a.name:
                continue
            problem = self._problem(call)
            if problem is None:
                checked = " with the expected arguments" if a.args or self.validator else ""
                return Verdict(True, 1.0, f"called `{call.name}`{checked}")
            problems.append(problem)
        more = f" (and {len(problems) - 1} more non-matching calls)" if len(problems) > 1 else ""
        return Verdict(False, 0.0, problems[0] + more)

    def _problem(self, call: ToolCall) -> str | None:
        a: ToolCallArgs = self.args  # type: ignore[assignment]
        got = call.arguments
        if got is None:
            return f"`{call.name}` arguments are not a JSON object: {quote(call.raw_arguments)}"
        for key, want in a.args.items():
            if key not in got:
                return f"`{call.name}` argument `{key}` missing (got {', '.join(sorted(got)) or 'none'})"
            if not json_equal(want, got[key]):
                return f"`{call.name}` argument `{key}`: expected {_dump(want)}, got {_dump(got[key])}"
        if self.validator is not None:
            mismatch = schema_problem(self.validator, got)
            if mismatch:
                return f"`{call.name}` arguments do not match the schema {mismatch}"
        return None


class NoToolCall(Scorer):
    """The model answered without calling a tool."""

    name = "no_tool_call"
    Args = NoArgs

    def score(self, inp: ScoreInput) -> Verdict:
        if inp.tool_calls:
            names = ", ".join(f"`{c.name}`" for c in inp.tool_calls)
            return Verdict(False, 0.0, f"expected no tool call, but called {names}")
        return Verdict(True, 1.0, "no tool call")


# --------------------------------------------------------------------------- numbers and size


# A sign only counts at a word start, so "pages 10-20" reads 10 then 20, never -20.
_NUMBER = re.compile(r"(?<![\w.])[-+\u2212]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


def find_numbers(text: str) -> list[float]:
    """Numbers in prose: signs, decimals, exponents and comma thousands separators (1,234.5)."""
    return [float(m.group(0).replace(",", "").replace("\u2212", "-")) for m in _NUMBER.finditer(text)]


class NumericArgs(Options):
    value: float
    tolerance: Annotated[float, Field(ge=0)] = 0.0
    relative: bool = False
    last: bool = False

    @field_validator("value", "tolerance")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return value


class Numeric(Scorer):
    """The first (or last) number in the reply equals `value` within `tolerance` (absolute, or a
    fraction of `value` with `relative: true`)."""

    name = "numeric"
    Args = NumericArgs
    shorthand: ClassVar[str] = "value"

    def score(self, inp: ScoreInput) -> Verdict:
        a: NumericArgs = self.args  # type: ignore[assignment]
        if is_empty(inp.text):
            return EMPTY
        numbers = find_numbers(inp.text)
        if not numbers:
            return Verdict(False, 0.0, f"no number in reply: {quote(inp.text)}")
        got = numbers[-1] if a.last else numbers[0]
        allowed = a.tolerance * abs(a.value) if a.relative else a.tolerance
        ok = abs(got - a.value) <= allowed or math.isclose(got, a.value, rel_tol=1e-9)
        tol = ""
        if a.tolerance:
            tol = f" ± {a.tolerance * 100:g}%" if a.relative else f" ± {_fmt(a.tolerance)}"
        which = "last" if a.last else "first"
        reason = f"got {_fmt(got)} ({which} number), expected {_fmt(a.value)}{tol}"
        return Verdict(ok, 1.0 if ok else 0.0, reason)


Count = Annotated[int, Field(ge=0)] | None


class LengthArgs(Options):
    min_chars: Count = None
    max_chars: Count = None
    min_words: Count = None
    max_words: Count = None

    @model_validator(mode="after")
    def _sensible(self) -> LengthArgs:
        if all(v is None for v in (self.min_chars, self.max_chars, self.min_words, self.max_words)):
            raise ValueError("give at least one of min_chars, max_chars, min_words, max_words")
        for unit in ("chars", "words"):
            lo, hi = getattr(self, f"min_{unit}"), getattr(self, f"max_{unit}")
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"min_{unit} ({lo}) is greater than max_{unit} ({hi})")
        return self


class Length(Scorer):
    """Reply size bounds; characters are counted after stripping, words split on whitespace."""

    name = "length"
    Args = LengthArgs

    def score(self, inp: ScoreInput) -> Verdict:
        a: LengthArgs = self.args  # type: ignore[assignment]
        size = {"chars": len(inp.text.strip()), "words": len(inp.text.split())}
        broken: list[str] = []
        for unit, n in size.items():
            lo, hi = getattr(a, f"min_{unit}"), getattr(a, f"max_{unit}")
            if lo is not None and n < lo:
                broken.append(f"{n} {unit} < min {lo}")
            if hi is not None and n > hi:
                broken.append(f"{n} {unit} > max {hi}")
        if broken and is_empty(inp.text):
            return EMPTY
        if broken:
            return Verdict(False, 0.0, "; ".join(broken))
        return Verdict(True, 1.0, f"{size['chars']} chars, {size['words']} words: within limits")


# --------------------------------------------------------------------------- combinators


class CombinatorArgs(Options):
    scorers: Annotated[list[Any], Field(min_length=1)]


def build_children(entries: Sequence[Any], registry: ScorerRegistry) -> list[BoundScorer]:
    children: list[BoundScorer] = []
    for i, entry in enumerate(entries):
        try:
            children.append(registry.build(entry, nested=True))
        except ScorerSpecError as exc:
            raise ScorerSpecError(
                ("scorers", i, *exc.loc), exc.problem, exc.hint, unknown=exc.unknown
            ) from None
    return children


class _Combinator(Scorer):
    Args = CombinatorArgs
    shorthand: ClassVar[str] = "scorers"

    def __init__(self, args: CombinatorArgs, registry: ScorerRegistry) -> None:
        super().__init__(args, registry)
        self.children = build_children(args.scorers, registry)

    async def verdicts(self, inp: ScoreInput) -> list[tuple[str, Verdict]]:
        results = await asyncio.gather(*(child.run(inp) for child in self.children))
        return [(child.label, v) for child, v in zip(self.children, results, strict=True)]


def _listing(items: list[tuple[str, Verdict]]) -> str:
    return "; ".join(f"{label}: {v.reason}" for label, v in items)


class AllOf(_Combinator):
    """Every nested scorer must pass; score = their mean."""

    name = "all_of"

    async def score(self, inp: ScoreInput) -> Verdict:
        results = await self.verdicts(inp)
        failed = [(label, v) for label, v in results if not v.passed]
        score = sum(v.score for _, v in results) / len(results)
        if failed:
            return Verdict(False, score, f"{len(failed)} of {len(results)} failed: {_listing(failed)}")
        return Verdict(True, score, f"all {len(results)} passed")


class AnyOf(_Combinator):
    """At least one nested scorer must pass; score = the best one."""

    name = "any_of"

    async def score(self, inp: ScoreInput) -> Verdict:
        results = await self.verdicts(inp)
        score = max(v.score for _, v in results)
        passed = [(label, v) for label, v in results if v.passed]
        if passed:
            return Verdict(True, score, _listing(passed[:1]))
        return Verdict(False, score, f"none of {len(results)} passed: {_listing(results)}")


BUILTINS: tuple[type[Scorer], ...] = (
    Exact,
    Contains,
    NotContains,
    Regex,
    Json,
    ToolCallScorer,
    NoToolCall,
    Numeric,
    Length,
    AllOf,
    AnyOf,
)
