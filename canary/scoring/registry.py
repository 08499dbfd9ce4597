"""Turning a canary file's scorer entries into runnable scorers.

A registry is a plain object, built per project by `build_registry`: nothing is cached at
module level, so two projects loaded in one process never see each other's scorers.

Conventions the registry handles for every scorer, so scorers stay small:
- `turns:` inside an entry's options selects which turns the scorer judges; scorers never see it.
- A scorer class may set `shorthand = "<option>"`: a bare value (string, number, list) then fills
  that option, so `contains: Paris` means `contains: {any: Paris}`. Error locations of a shorthand
  entry drop the implied option, so they point at what the user actually wrote.
- A null value (`no_tool_call:`) means no options.
- `Scorer.__init__` may raise `ScorerSpecError` with a loc relative to its options; the registry
  prefixes the scorer's name."""

from __future__ import annotations

import inspect
import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from canary.scoring.base import ScoreInput, Scorer, ScorerSpecError, Verdict

TurnKeyword = Literal["all", "first", "last"]
TurnSelection = TurnKeyword | tuple[int | str, ...]
TURN_KEYWORDS: tuple[TurnKeyword, ...] = ("all", "first", "last")

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
MAX_REASON_CHARS = 500
_MARK = "__canary_scorer__"


def scorer(cls: type[Scorer]) -> type[Scorer]:
    """Mark a Scorer subclass so a scorers/ file or a plugin module gets it registered.

    Marking instead of registering keeps the class free of any global registry."""
    if not (isinstance(cls, type) and issubclass(cls, Scorer)):
        raise TypeError(f"@scorer applies to Scorer subclasses, not {cls!r}")
    setattr(cls, _MARK, True)
    return cls


def marked_scorers(namespace: dict[str, Any]) -> list[type[Scorer]]:
    """The @scorer classes in a module's namespace, in definition order, each once."""
    found: list[type[Scorer]] = []
    for value in namespace.values():
        if isinstance(value, type) and value.__dict__.get(_MARK) and value not in found:
            found.append(value)
    return found


@dataclass
class BoundScorer:
    """One scorer entry, validated and ready to run on replies."""

    label: str  # the scorer's name
    scorer: Scorer
    turns: TurnSelection = "all"

    def applies_to(self, turn: int, n_turns: int, turn_names: Sequence[str | None]) -> bool:
        """Whether this scorer judges 1-based `turn` of a conversation of `n_turns` replies."""
        if self.turns == "all":
            return True
        if self.turns == "first":
            return turn == 1
        if self.turns == "last":
            return turn == n_turns
        name = turn_names[turn - 1] if 0 < turn <= len(turn_names) else None
        return turn in self.turns or (name is not None and name in self.turns)

    def validate_turns(self, n_turns: int, turn_names: Sequence[str | None]) -> None:
        """Reject a selection naming turns the canary does not have (call once the canary is known)."""
        if isinstance(self.turns, str):
            return
        names = [n for n in turn_names if n]
        for i, item in enumerate(self.turns):
            loc = (self.label, "turns", i)
            if isinstance(item, int) and item > n_turns:
                raise ScorerSpecError(loc, f"turn {item} does not exist (the canary has {n_turns})")
            if isinstance(item, str) and item not in names:
                hint = (
                    f"turn names: {', '.join(names)}"
                    if names
                    else "name turns with `name:` to select them by name"
                )
                raise ScorerSpecError(loc, f"no turn named `{item}`", hint)

    async def run(self, inp: ScoreInput) -> Verdict:
        """Score one reply; scorer exceptions propagate so the runner records a harness_error."""
        result = self.scorer.score(inp)
        if inspect.isawaitable(result):
            result = await result
        return checked_verdict(result, self.label)


def checked_verdict(result: object, label: str) -> Verdict:
    """A scorer's own bug (wrong type, NaN) must surface as a harness error, not as a score."""
    if not isinstance(result, Verdict):
        raise TypeError(f"scorer `{label}` returned {type(result).__name__}, expected Verdict")
    score = result.score
    if not isinstance(score, numbers.Real) or math.isnan(float(score)):
        raise ValueError(f"scorer `{label}` returned score {score!r}, expected a number in [0, 1]")
    reason = result.reason if isinstance(result.reason, str) else str(result.reason)
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return Verdict(passed=bool(result.passed), score=min(1.0, max(0.0, float(score))), reason=reason)


class ScorerRegistry:
    """Scorer classes by name, with where each came from (for clash messages)."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Scorer]] = {}
        self._origins: dict[str, str] = {}

    def register(self, cls: type[Scorer], origin: str | None = None) -> type[Scorer]:
        """Add a scorer class; a second class under the same name is an error naming both origins."""
        _check_class(cls)
        origin = origin or f"module {cls.__module__}"
        existing = self._classes.get(cls.name)
        if existing is cls:
            return cls
        if existing is not None:
            raise ValueError(
                f"scorer name `{cls.name}` is defined twice: by {self._origins[cls.name]} "
                f"and by {origin}; rename one of them"
            )
        self._classes[cls.name] = cls
        self._origins[cls.name] = origin
        return cls

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> type[Scorer] | None:
        return self._classes.get(name)

    def origin(self, name: str) -> str | None:
        return self._origins.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def build(self, entry: dict[str, Any], *, nested: bool = False) -> BoundScorer:
        """Validate one `{name: options}` entry. `nested` entries (inside all_of/any_of) take no `turns`."""
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ScorerSpecError((), "expected a mapping with exactly one key, the scorer's name")
        ((name, raw),) = entry.items()
        cls = self._classes.get(name) if isinstance(name, str) else None
        if cls is None:
            known = ", ".join(self.names())
            raise ScorerSpecError(
                (str(name),),
                f"unknown scorer `{name}`",
                f"known scorers: {known}; or add one in scorers/",
                unknown=True,
            )
        turns: TurnSelection = "all"
        if isinstance(raw, dict) and "turns" in raw:
            raw = dict(raw)
            turns_raw = raw.pop("turns")
            if nested:
                raise ScorerSpecError(
                    (name, "turns"),
                    "`turns` only applies to top-level scorers",
                    "put `turns` on the enclosing scorer",
                )
            turns = _parse_turns(name, turns_raw)
        options, shorthand = _coerce(cls, raw)
        try:
            args = cls.Args.model_validate(options)
            _reject_ignored_keys(cls.Args, options)
            instance = cls(args, self)
        except ValidationError as exc:
            loc, problem, hint = _explain(exc, cls, nested)
            raise ScorerSpecError(_prefix(name, loc, shorthand), problem, hint) from None
        except ScorerSpecError as exc:
            raise ScorerSpecError(
                _prefix(name, exc.loc, shorthand), exc.problem, exc.hint, unknown=exc.unknown
            ) from None
        return BoundScorer(label=name, scorer=instance, turns=turns)


def _check_class(cls: object) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Scorer)):
        raise TypeError(f"{cls!r} is not a subclass of canary.scoring.Scorer")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise TypeError(f"scorer class {cls.__qualname__} needs a `name` like `my_scorer`, not {name!r}")
    if not (isinstance(cls.Args, type) and issubclass(cls.Args, BaseModel)):
        raise TypeError(f"scorer `{name}`: `Args` must be a pydantic BaseModel subclass")
    if inspect.isabstract(cls):
        raise TypeError(f"scorer `{name}` does not implement score()")


def _coerce(cls: type[Scorer], raw: Any) -> tuple[Any, bool]:
    """Options as a mapping for pydantic, and whether a shorthand value was expanded."""
    if raw is None:
        return {}, False
    if isinstance(raw, dict):
        return raw, False
    field = getattr(cls, "shorthand", None)
    if field:
        return {field: raw}, True
    return raw, False  # pydantic answers "expected a mapping"


def _prefix(name: str, loc: tuple[str | int, ...], shorthand: bool) -> tuple[str | int, ...]:
    if shorthand and loc:
        loc = loc[1:]  # the option the bare value stood for does not appear in the file
    return (name, *loc)


def _parse_turns(name: str, raw: Any) -> TurnSelection:
    problem = "expected all, first, last, or a list of turn numbers (1-based) and/or turn names"
    if isinstance(raw, str):
        if raw in TURN_KEYWORDS:
            return raw  # type: ignore[return-value]
        raise ScorerSpecError((name, "turns"), problem, f"to select a turn by name write `turns: [{raw}]`")
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ScorerSpecError((name, "turns"), problem)
    for i, item in enumerate(raw):
        ok_int = isinstance(item, int) and not isinstance(item, bool) and item >= 1
        if not (ok_int or (isinstance(item, str) and item)):
            raise ScorerSpecError((name, "turns", i), "expected a turn number (1-based) or a turn name")
    return tuple(raw)


_PROBLEMS = {
    "missing": "field required",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "mapping_type": "expected a mapping",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
}


def _explain(
    exc: ValidationError, cls: type[Scorer], nested: bool
) -> tuple[tuple[str | int, ...], str, str | None]:
    """The first pydantic error as (loc, short problem, hint)."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    kind = err["type"]
    options = [f.alias or n for n, f in cls.Args.model_fields.items()]
    valid = f"valid options: {', '.join(options if nested else [*options, 'turns'])}"
    if kind == "extra_forbidden":
        return loc, f"unknown option `{loc[-1]}`", valid if len(loc) == 1 else None
    if kind in ("value_error", "assertion_error") and err.get("ctx", {}).get("error") is not None:
        return loc, str(err["ctx"]["error"]), None
    ctx = err.get("ctx", {})
    if kind == "too_short" and ctx.get("min_length") == 1:
        problem = "expected at least one item"
    elif kind == "string_too_short" and ctx.get("min_length") == 1:
        problem = "expected a non-empty string"
    else:
        problem = _PROBLEMS.get(kind) or (err["msg"][:1].lower() + err["msg"][1:])
    hint = None
    if not loc:
        hint = valid
    elif kind == "missing" and len(loc) == 1:
        required = [n for n, f in cls.Args.model_fields.items() if f.is_required()]
        hint = f"required options: {', '.join(required)}"
    return loc, problem, hint


def _reject_ignored_keys(model: type[BaseModel], options: Any) -> None:
    """Plugins' Args may not forbid extra keys; canary files reject unknown keys regardless."""
    if model.model_config.get("extra") == "forbid" or not isinstance(options, dict):
        return
    known = {n for n, f in model.model_fields.items()} | {
        f.alias for f in model.model_fields.values() if f.alias
    }
    for key in options:
        if key not in known:
            raise ScorerSpecError(
                (key,), f"unknown option `{key}`", f"valid options: {', '.join(sorted(known))}"
            )


def build_registry(scorers_dir: Path | None = None) -> ScorerRegistry:
    """Built-ins, then every scorers_dir/*.py, then entry points in group `canary.scorers`."""
    from canary.scoring.builtins import BUILTINS
    from canary.scoring.loader import load_entry_points, load_local_scorers

    registry = ScorerRegistry()
    for cls in BUILTINS:
        registry.register(cls, origin="built-in")
    if scorers_dir is not None:
        load_local_scorers(registry, scorers_dir)
    load_entry_points(registry)
    return registry
