"""Scorers: built-ins, spec errors, turn selection, and loading from scorers/ and plugins."""

from __future__ import annotations

import asyncio
import shutil
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from canary.config.models import MultiTurnCanary, SingleCanary
from canary.errors import SetupError
from canary.records import ToolCall
from canary.scoring import (
    BoundScorer,
    NoArgs,
    ScoreInput,
    Scorer,
    ScorerRegistry,
    ScorerSpecError,
    Verdict,
    build_registry,
    scorer,
)
from canary.scoring.builtins import find_numbers, json_equal

FIXTURES = Path(__file__).parent / "fixtures" / "scorers"
CANARY = SingleCanary(id="t", prompt="p", scorers=[{"no_tool_call": {}}])
BUILTIN_NAMES = [
    "all_of", "any_of", "contains", "exact", "json", "length", "no_tool_call",
    "not_contains", "numeric", "regex", "tool_call",
]  # fmt: skip


@pytest.fixture(scope="module")
def registry() -> ScorerRegistry:
    return build_registry(None)


def call(name: str, arguments: dict[str, Any] | None, raw: str | None = None) -> ToolCall:
    import json

    return ToolCall(
        id=f"c-{name}", name=name, arguments=arguments, raw_arguments=raw or json.dumps(arguments)
    )


def run(bound: BoundScorer, text: str, calls: tuple[ToolCall, ...] = (), turn: int = 1) -> Verdict:
    return asyncio.run(bound.run(ScoreInput(text=text, tool_calls=calls, turn=turn, canary=CANARY)))


def score(
    registry: ScorerRegistry, entry: dict[str, Any], text: str, calls: tuple[ToolCall, ...] = ()
) -> Verdict:
    return run(registry.build(entry), text, calls)


def spec_error(registry: ScorerRegistry, entry: Any) -> ScorerSpecError:
    with pytest.raises(ScorerSpecError) as info:
        registry.build(entry)
    return info.value


# --------------------------------------------------------------------------- exact


def test_exact_pass_and_fail(registry: ScorerRegistry) -> None:
    assert score(registry, {"exact": {"value": "Paris"}}, "  Paris\n") == Verdict(
        True, 1.0, 'reply equals "Paris"'
    )
    v = score(registry, {"exact": {"value": "Paris"}}, "paris")
    assert v == Verdict(False, 0.0, 'expected "Paris", got "paris"')


def test_exact_options(registry: ScorerRegistry) -> None:
    assert score(registry, {"exact": {"value": "Paris", "case_insensitive": True}}, "PARIS").passed
    v = score(registry, {"exact": {"value": "Paris", "strip": False}}, "Paris ")
    assert not v.passed and v.reason == 'expected "Paris", got "Paris"'  # quotes flatten whitespace
    assert score(registry, {"exact": 42}, "42").passed  # shorthand; YAML numbers are text here
    assert score(
        registry, {"exact": {"value": ""}}, "  "
    ).passed  # expecting nothing is not an empty-reply failure


def test_exact_empty_reply(registry: ScorerRegistry) -> None:
    assert score(registry, {"exact": "Paris"}, " \n") == Verdict(False, 0.0, "empty reply")


# --------------------------------------------------------------------------- contains / not_contains


def test_contains_all_scores_fraction_found(registry: ScorerRegistry) -> None:
    entry = {"contains": {"all": ["Paris", "France"], "case_insensitive": True}}
    assert score(registry, entry, "PARIS, france") == Verdict(True, 1.0, 'found all 2: "Paris", "France"')
    assert score(registry, entry, "Paris is lovely") == Verdict(
        False, 0.5, 'missing "France" in "Paris is lovely"'
    )
    assert score(registry, {"contains": {"all": ["Paris", "France"]}}, "paris, france").score == 0.0


def test_contains_any_and_shorthands(registry: ScorerRegistry) -> None:
    assert score(registry, {"contains": "Paris"}, "It is Paris.") == Verdict(True, 1.0, 'found "Paris"')
    assert score(registry, {"contains": ["Lyon", "Paris"]}, "Paris") == Verdict(True, 1.0, 'found "Paris"')
    v = score(registry, {"contains": {"any": ["Lyon", "Nice"]}}, "Paris")
    assert v == Verdict(False, 0.0, 'none of "Lyon", "Nice" in "Paris"')
    assert score(registry, {"contains": {"all": "Paris"}}, "Paris").passed  # one string = a list of one


def test_contains_empty_reply_and_long_quote(registry: ScorerRegistry) -> None:
    assert score(registry, {"contains": "x"}, "") == Verdict(False, 0.0, "empty reply")
    v = score(registry, {"contains": "needle"}, "hay " * 100)
    quoted = v.reason.split(" in ", 1)[1]
    assert quoted.startswith('"hay hay') and quoted.endswith('…"') and len(quoted) == 82


def test_contains_needs_exactly_one_of_all_any(registry: ScorerRegistry) -> None:
    err = spec_error(registry, {"contains": {"all": ["a"], "any": ["b"]}})
    assert err.loc == ("contains",) and "exactly one of `all`" in err.problem
    err = spec_error(registry, {"contains": {"case_insensitive": True}})
    assert err.loc == ("contains",) and "exactly one of" in err.problem


def test_not_contains(registry: ScorerRegistry) -> None:
    entry = {"not_contains": {"any": ["As an AI", "sorry"], "case_insensitive": True}}
    assert score(registry, entry, "Paris.") == Verdict(True, 1.0, 'none of "As an AI", "sorry" present')
    v = score(registry, entry, "I'm SORRY, I cannot help.")
    assert v == Verdict(False, 0.0, 'found forbidden "sorry" in "I\'m SORRY, I cannot help."')
    assert score(registry, {"not_contains": "sorry"}, "Sorry").passed  # case-sensitive by default
    assert score(registry, {"not_contains": "sorry"}, "").passed  # empty contains nothing forbidden


# --------------------------------------------------------------------------- regex


def test_regex_pass_fail_and_tail_quote(registry: ScorerRegistry) -> None:
    entry = {"regex": {"pattern": r"DONE\s*$"}}
    assert score(registry, entry, "paris. DONE\n") == Verdict(True, 1.0, '/DONE\\s*$/ matched "DONE"')
    v = score(registry, entry, "word " * 40 + "finished")
    assert (
        not v.passed
        and v.reason.startswith('no match for /DONE\\s*$/ in "…')
        and v.reason.endswith('finished"')
    )


def test_regex_flags(registry: ScorerRegistry) -> None:
    assert not score(registry, {"regex": "^done"}, "Line\nDONE").passed
    assert score(registry, {"regex": {"pattern": "^done", "flags": ["i", "m"]}}, "Line\nDONE").passed
    assert score(registry, {"regex": {"pattern": "a.b", "flags": "s"}}, "a\nb").passed
    err = spec_error(registry, {"regex": {"pattern": "a", "flags": ["x"]}})
    assert err.loc == ("regex", "flags") and "unknown regex flag `x`" in err.problem


def test_regex_must_not_match(registry: ScorerRegistry) -> None:
    entry = {"regex": {"pattern": r"\bTODO\b", "must_match": False}}
    assert score(registry, entry, "all done") == Verdict(True, 1.0, "no match for /\\bTODO\\b/, as required")
    v = score(registry, entry, "left a TODO here")
    assert v == Verdict(False, 0.0, '/\\bTODO\\b/ must not match, but matched "left a TODO here"')
    assert score(registry, entry, "").passed


def test_regex_empty_and_invalid(registry: ScorerRegistry) -> None:
    assert score(registry, {"regex": "x*"}, "") == Verdict(False, 0.0, "empty reply")
    err = spec_error(registry, {"regex": {"pattern": "(unclosed"}})
    assert err.loc == ("regex", "pattern") and err.problem.startswith("invalid regular expression: missing )")
    assert spec_error(registry, {"regex": "["}).loc == ("regex",)  # shorthand: the bare value is the pattern


# --------------------------------------------------------------------------- json


def test_json_plain_and_fenced(registry: ScorerRegistry) -> None:
    assert score(registry, {"json": {}}, ' {"a": 1} ') == Verdict(True, 1.0, "valid JSON")
    assert score(registry, {"json": None}, 'Sure:\n```JSON\n{"a": 1}\n```\nmore ```json\nbad\n```').passed
    v = score(registry, {"json": {}}, "Sure: {a: 1}")
    assert v == Verdict(False, 0.0, 'reply is not valid JSON (Expecting value): "Sure: {a: 1}"')
    v = score(registry, {"json": {}}, "```json\n{a: 1}\n```")
    assert not v.passed and v.reason.startswith(
        "the ```json block is not valid JSON: Expecting property name"
    )
    assert score(registry, {"json": {}}, "") == Verdict(False, 0.0, "empty reply")


def test_json_schema(registry: ScorerRegistry) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    entry = {"json": {"schema": schema}}
    assert score(registry, entry, '{"city": "Paris"}') == Verdict(True, 1.0, "valid JSON matching the schema")
    v = score(registry, entry, '{"city": 3}')
    assert v == Verdict(False, 0.0, "JSON does not match the schema at $.city: 3 is not of type 'string'")
    err = spec_error(registry, {"json": {"schema": {"type": "no-such-type"}}})
    assert err.loc == ("json", "schema") and err.problem.startswith("invalid JSON Schema:")


# --------------------------------------------------------------------------- tool_call / no_tool_call


WEATHER = {"tool_call": {"name": "get_weather", "args": {"city": "Paris"}}}


def test_tool_call_pass_with_subset_args(registry: ScorerRegistry) -> None:
    calls = (call("get_weather", {"city": "Paris", "unit": "C"}),)
    assert score(registry, WEATHER, "", calls) == Verdict(
        True, 1.0, "called `get_weather` with the expected arguments"
    )
    assert score(registry, {"tool_call": "get_weather"}, "", calls) == Verdict(
        True, 1.0, "called `get_weather`"
    )
    assert score(registry, {"tool_call": {}}, "", calls).passed  # any call at all


def test_tool_call_failures_have_clear_reasons(registry: ScorerRegistry) -> None:
    v = score(registry, WEATHER, "It is sunny.")
    assert v == Verdict(False, 0.0, 'no tool was called; replied "It is sunny."')
    v = score(registry, WEATHER, "", (call("get_time", {"city": "Paris"}),))
    assert v == Verdict(False, 0.0, "called `get_time`, expected `get_weather`")
    v = score(registry, WEATHER, "", (call("get_weather", None, raw="{city: Paris"),))
    assert v == Verdict(False, 0.0, '`get_weather` arguments are not a JSON object: "{city: Paris"')
    v = score(registry, WEATHER, "", (call("get_weather", {"city": "London"}),))
    assert v == Verdict(False, 0.0, '`get_weather` argument `city`: expected "Paris", got "London"')
    v = score(registry, WEATHER, "", (call("get_weather", {"town": "Paris"}),))
    assert v == Verdict(False, 0.0, "`get_weather` argument `city` missing (got town)")


def test_tool_call_any_call_may_match_unless_index(registry: ScorerRegistry) -> None:
    calls = (call("get_weather", {"city": "Rome"}), call("get_weather", {"city": "Paris"}))
    assert score(registry, WEATHER, "", calls).passed
    v = score(registry, WEATHER, "", (*calls, call("get_weather", {"city": "Oslo"})))
    assert v.passed
    first = {"tool_call": {"name": "get_weather", "args": {"city": "Paris"}, "index": 1}}
    v = score(registry, first, "", calls)
    assert v == Verdict(False, 0.0, '`get_weather` argument `city`: expected "Paris", got "Rome"')
    assert score(
        registry, {"tool_call": {"name": "get_weather", "args": {"city": "Paris"}, "index": -1}}, "", calls
    ).passed
    v = score(registry, {"tool_call": {"index": 3}}, "", calls)
    assert v == Verdict(False, 0.0, "no tool call #3 (2 made: `get_weather`, `get_weather`)")
    assert spec_error(registry, {"tool_call": {"index": 0}}).loc == ("tool_call", "index")


def test_tool_call_deep_equal_is_json_equality(registry: ScorerRegistry) -> None:
    entry = {"tool_call": {"name": "f", "args": {"flag": True, "opts": {"n": 1, "tags": ["a"]}}}}
    assert score(registry, entry, "", (call("f", {"flag": True, "opts": {"n": 1.0, "tags": ["a"]}}),)).passed
    v = score(registry, entry, "", (call("f", {"flag": 1, "opts": {"n": 1, "tags": ["a"]}}),))
    assert v == Verdict(False, 0.0, "`f` argument `flag`: expected true, got 1")
    v = score(registry, entry, "", (call("f", {"flag": True, "opts": {"n": 1, "tags": ["a"], "x": 0}}),))
    assert not v.passed and "argument `opts`" in v.reason
    assert (
        json_equal([1, {"a": None}], [1.0, {"a": None}])
        and not json_equal(0, False)
        and not json_equal("1", 1)
    )


def test_tool_call_schema(registry: ScorerRegistry) -> None:
    schema = {"type": "object", "properties": {"days": {"type": "integer", "maximum": 7}}}
    entry = {"tool_call": {"name": "forecast", "schema": schema}}
    assert score(registry, entry, "", (call("forecast", {"days": 3}),)).passed
    v = score(registry, entry, "", (call("forecast", {"days": 30}),))
    assert v == Verdict(
        False,
        0.0,
        "`forecast` arguments do not match the schema at $.days: 30 is greater than the maximum of 7",
    )
    assert spec_error(registry, {"tool_call": {"schema": {"type": 5}}}).loc == ("tool_call", "schema")


def test_tool_call_args_must_be_a_mapping(registry: ScorerRegistry) -> None:
    err = spec_error(registry, {"tool_call": {"name": "f", "args": ["Paris"]}})
    assert (err.loc, err.problem, err.unknown) == (("tool_call", "args"), "expected a mapping", False)


def test_no_tool_call(registry: ScorerRegistry) -> None:
    assert score(registry, {"no_tool_call": None}, "") == Verdict(True, 1.0, "no tool call")
    v = score(registry, {"no_tool_call": {}}, "x", (call("a", {}), call("b", {})))
    assert v == Verdict(False, 0.0, "expected no tool call, but called `a`, `b`")
    err = spec_error(registry, {"no_tool_call": {"name": "a"}})
    assert (err.loc, err.problem, err.hint) == (
        ("no_tool_call", "name"),
        "unknown option `name`",
        "valid options: turns",
    )


# --------------------------------------------------------------------------- numeric


def test_find_numbers() -> None:
    assert find_numbers("1,234.5 and -7, +3e2, \u22122.5, .5") == [1234.5, -7.0, 300.0, -2.5, 0.5]
    assert find_numbers("pages 10-20, GPT4, 1,2,3") == [10.0, 20.0, 1.0, 2.0, 3.0]
    assert find_numbers("v1.2.3 costs $12,000") == [12000.0]


def test_numeric_pass_fail_first_and_last(registry: ScorerRegistry) -> None:
    assert score(registry, {"numeric": 1234}, "About 1,234 people") == Verdict(
        True, 1.0, "got 1234 (first number), expected 1234"
    )
    v = score(registry, {"numeric": {"value": 42}}, "Step 1 gives 42")
    assert v == Verdict(False, 0.0, "got 1 (first number), expected 42")
    assert score(registry, {"numeric": {"value": 42, "last": True}}, "Step 1 gives 42").passed
    assert score(registry, {"numeric": -3.5}, "It is -3.5 degrees").passed


def test_numeric_tolerance(registry: ScorerRegistry) -> None:
    v = score(registry, {"numeric": {"value": 100, "tolerance": 0.5}}, "100.4")
    assert v == Verdict(True, 1.0, "got 100.4 (first number), expected 100 ± 0.5")
    assert not score(registry, {"numeric": {"value": 100, "tolerance": 0.5}}, "100.6").passed
    v = score(registry, {"numeric": {"value": 200, "tolerance": 0.05, "relative": True}}, "209")
    assert v == Verdict(True, 1.0, "got 209 (first number), expected 200 ± 5%")
    assert not score(registry, {"numeric": {"value": 200, "tolerance": 0.05, "relative": True}}, "211").passed
    assert score(registry, {"numeric": {"value": 0.3, "last": True}}, "0.1 + 0.2 = 0.3").passed


def test_numeric_no_number_and_empty(registry: ScorerRegistry) -> None:
    assert score(registry, {"numeric": 1}, "none at all") == Verdict(
        False, 0.0, 'no number in reply: "none at all"'
    )
    assert score(registry, {"numeric": 1}, "") == Verdict(False, 0.0, "empty reply")
    assert spec_error(registry, {"numeric": {"value": 1, "tolerance": -1}}).loc == ("numeric", "tolerance")


# --------------------------------------------------------------------------- length


def test_length_bounds(registry: ScorerRegistry) -> None:
    entry = {"length": {"min_words": 2, "max_chars": 10}}
    assert score(registry, entry, " two words ") == Verdict(True, 1.0, "9 chars, 2 words: within limits")
    assert score(registry, entry, "one") == Verdict(False, 0.0, "1 words < min 2")
    assert score(registry, entry, "far too many words") == Verdict(False, 0.0, "18 chars > max 10")
    assert score(registry, {"length": {"min_chars": 5, "max_words": 1}}, "abc de") == Verdict(
        False, 0.0, "2 words > max 1"
    )


def test_length_empty_reply(registry: ScorerRegistry) -> None:
    assert score(registry, {"length": {"max_chars": 10}}, "").passed  # nothing is within any maximum
    assert score(registry, {"length": {"min_chars": 1}}, "  ") == Verdict(False, 0.0, "empty reply")


def test_length_spec_errors(registry: ScorerRegistry) -> None:
    err = spec_error(registry, {"length": {}})
    assert err.loc == ("length",) and err.problem.startswith("give at least one of")
    err = spec_error(registry, {"length": {"min_chars": 5, "max_chars": 2}})
    assert err.problem == "min_chars (5) is greater than max_chars (2)"
    err = spec_error(registry, {"length": 5})
    assert (err.loc, err.problem) == (("length",), "expected a mapping")
    assert err.hint == "valid options: min_chars, max_chars, min_words, max_words, turns"


# --------------------------------------------------------------------------- all_of / any_of


def test_all_of_mean_and_reason(registry: ScorerRegistry) -> None:
    entry = {"all_of": [{"contains": "Paris"}, {"length": {"max_chars": 10}}]}
    assert score(registry, entry, "Paris") == Verdict(True, 1.0, "all 2 passed")
    v = score(registry, entry, "Paris is in France")
    assert v == Verdict(False, 0.5, "1 of 2 failed: length: 18 chars > max 10")
    assert score(registry, {"all_of": {"scorers": [{"contains": "Paris"}]}}, "Paris").passed


def test_any_of_max_and_reason(registry: ScorerRegistry) -> None:
    entry = {"any_of": [{"exact": "Paris"}, {"contains": {"all": ["Paris", "France"]}}]}
    assert score(registry, entry, "Paris") == Verdict(True, 1.0, 'exact: reply equals "Paris"')
    v = score(registry, entry, "France")
    assert v.passed is False and v.score == 0.5
    assert (
        v.reason
        == 'none of 2 passed: exact: expected "Paris", got "France"; contains: missing "Paris" in "France"'
    )


def test_combinator_spec_errors_keep_nested_loc(registry: ScorerRegistry) -> None:
    err = spec_error(registry, {"all_of": [{"no_tool_call": {}}, {"contains": {"any": []}}]})
    assert (err.loc, err.problem) == (("all_of", 1, "contains", "any"), "expected at least one item")
    err = spec_error(registry, {"any_of": {"scorers": [{"nope": {}}]}})
    assert err.loc == ("any_of", "scorers", 0, "nope") and err.unknown
    err = spec_error(registry, {"all_of": [{"contains": "a", "exact": "b"}]})
    assert err.loc == ("all_of", 0) and "exactly one key" in err.problem
    err = spec_error(registry, {"all_of": [{"contains": {"any": "a", "turns": "last"}}]})
    assert err.loc == ("all_of", 0, "contains", "turns") and "top-level" in err.problem
    err = spec_error(registry, {"all_of": []})
    assert (err.loc, err.problem) == (("all_of",), "expected at least one item")
    err = spec_error(registry, {"all_of": [{"any_of": [{"regex": {"pattern": "("}}]}]})
    assert err.loc == ("all_of", 0, "any_of", 0, "regex", "pattern")


# --------------------------------------------------------------------------- spec errors


def test_unknown_scorer(registry: ScorerRegistry) -> None:
    err = spec_error(registry, {"containz": "x"})
    assert (err.loc, err.problem, err.unknown) == (("containz",), "unknown scorer `containz`", True)
    assert err.hint == f"known scorers: {', '.join(BUILTIN_NAMES)}; or add one in scorers/"


def test_unknown_option_and_missing_field(registry: ScorerRegistry) -> None:
    err = spec_error(registry, {"exact": {"value": "a", "foo": 1}})
    assert (err.loc, err.problem, err.unknown) == (("exact", "foo"), "unknown option `foo`", False)
    assert err.hint == "valid options: value, case_insensitive, strip, turns"
    err = spec_error(registry, {"exact": {"case_insensitive": True}})
    assert (err.loc, err.problem, err.hint) == (
        ("exact", "value"),
        "field required",
        "required options: value",
    )
    err = spec_error(registry, {"contains": {"any": ["a", ["b"]]}})
    assert (err.loc, err.problem) == (("contains", "any", 1), "expected a string")
    err = spec_error(registry, {"contains": ["a", None]})  # shorthand: loc points into the list as written
    assert (err.loc, err.problem) == (("contains", 1), "expected a string")
    err = spec_error(registry, {"exact": {"value": "a", "strip": "maybe"}})
    assert (err.loc, err.problem) == (("exact", "strip"), "expected true or false")


def test_entry_must_have_one_key(registry: ScorerRegistry) -> None:
    assert spec_error(registry, {"exact": "a", "contains": "b"}).loc == ()
    assert spec_error(registry, "exact").loc == ()


# --------------------------------------------------------------------------- turn selection


def test_turn_selection(registry: ScorerRegistry) -> None:
    names = ["greet", None, "bye"]

    def turns(sel: Any) -> list[int]:
        bound = registry.build({"contains": {"any": "x", "turns": sel}})
        return [t for t in (1, 2, 3) if bound.applies_to(t, 3, names)]

    assert registry.build({"contains": "x"}).turns == "all"
    assert turns("all") == [1, 2, 3]
    assert turns("first") == [1]
    assert turns("last") == [3]
    assert turns([2, "bye"]) == [2, 3]
    assert turns(2) == [2]
    assert turns(["greet"]) == [1]


def test_turn_selection_errors(registry: ScorerRegistry) -> None:
    err = spec_error(registry, {"regex": {"pattern": "x", "turns": "middle"}})
    assert err.loc == ("regex", "turns") and err.problem.startswith("expected all, first, last")
    assert err.hint == "to select a turn by name write `turns: [middle]`"
    err = spec_error(registry, {"regex": {"pattern": "x", "turns": [1, 0]}})
    assert err.loc == ("regex", "turns", 1)
    assert spec_error(registry, {"regex": {"pattern": "x", "turns": []}}).loc == ("regex", "turns")
    assert spec_error(registry, {"regex": {"pattern": "x", "turns": [True]}}).loc == ("regex", "turns", 0)


def test_validate_turns_against_the_canary(registry: ScorerRegistry) -> None:
    canary = MultiTurnCanary(
        id="m",
        kind="multi_turn",
        turns=[{"user": "hi", "name": "greet"}, {"user": "bye"}],
        scorers=[{"json": {}}],
    )
    names = [t.name for t in canary.turns]
    registry.build({"json": {"turns": [2, "greet"]}}).validate_turns(len(canary.turns), names)
    registry.build({"json": {"turns": "last"}}).validate_turns(2, names)
    with pytest.raises(ScorerSpecError) as info:
        registry.build({"json": {"turns": [1, 3]}}).validate_turns(2, names)
    assert (info.value.loc, info.value.problem) == (
        ("json", "turns", 1),
        "turn 3 does not exist (the canary has 2)",
    )
    with pytest.raises(ScorerSpecError) as info:
        registry.build({"json": {"turns": ["hello"]}}).validate_turns(2, names)
    assert (info.value.problem, info.value.hint) == ("no turn named `hello`", "turn names: greet")


# --------------------------------------------------------------------------- BoundScorer.run


class _Fixed(Scorer):
    """Returns whatever the test put in `result`, to probe how run() checks verdicts."""

    name = "fixed"
    result: Any = None

    def score(self, inp: ScoreInput) -> Any:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def _fixed(result: Any) -> BoundScorer:
    instance = _Fixed(NoArgs(), ScorerRegistry())
    instance.result = result
    return BoundScorer(label="fixed", scorer=instance)


def test_run_clamps_and_validates_scores() -> None:
    assert run(_fixed(Verdict(True, 1.7, "ok")), "x") == Verdict(True, 1.0, "ok")
    assert run(_fixed(Verdict(False, -0.2, "no")), "x") == Verdict(False, 0.0, "no")
    assert len(run(_fixed(Verdict(False, 0.0, "r" * 2000)), "x").reason) == 500
    with pytest.raises(ValueError, match="returned score nan"):
        run(_fixed(Verdict(True, float("nan"), "?")), "x")
    with pytest.raises(ValueError, match="returned score"):
        run(_fixed(Verdict(True, "high", "?")), "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="returned bool, expected Verdict"):
        run(_fixed(True), "x")


def test_run_propagates_scorer_exceptions() -> None:
    with pytest.raises(KeyError, match="boom"):
        run(_fixed(KeyError("boom")), "x")


def test_async_scorer_is_awaited() -> None:
    class Slow(Scorer):
        name = "slow"

        async def score(self, inp: ScoreInput) -> Verdict:
            await asyncio.sleep(0)
            return Verdict(inp.text == "yes", 2.0, f"turn {inp.turn}")

    registry = ScorerRegistry()
    registry.register(Slow)
    registry.register(Slow)  # the same class again is harmless (a module re-exporting it)
    assert run(registry.build({"slow": None}), "yes", turn=2) == Verdict(True, 1.0, "turn 2")


# --------------------------------------------------------------------------- registration


def test_register_name_clash_names_both_origins() -> None:
    class A(Scorer):
        name = "dup"

        def score(self, inp: ScoreInput) -> Verdict:
            return Verdict(True, 1.0, "")

    class B(A):
        pass

    registry = ScorerRegistry()
    registry.register(A, origin="scorers/a.py")
    with pytest.raises(ValueError, match=r"`dup` is defined twice: by scorers/a\.py and by scorers/b\.py"):
        registry.register(B, origin="scorers/b.py")
    assert registry.origin("dup") == "scorers/a.py" and registry.get("dup") is A


def test_register_rejects_bad_classes() -> None:
    class Abstract(Scorer):
        name = "abstract"

    class BadName(Scorer):
        name = "has space"

        def score(self, inp: ScoreInput) -> Verdict:
            return Verdict(True, 1.0, "")

    registry = ScorerRegistry()
    with pytest.raises(TypeError, match="does not implement score"):
        registry.register(Abstract)
    with pytest.raises(TypeError, match="needs a `name`"):
        registry.register(BadName)
    with pytest.raises(TypeError, match="not a subclass"):
        registry.register(int)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="@scorer applies to Scorer subclasses"):
        scorer(int)  # type: ignore[arg-type]


def test_args_without_extra_forbid_still_reject_unknown_keys() -> None:
    class LooseArgs(BaseModel):
        level: int = 1

    class Loose(Scorer):
        name = "loose"
        Args = LooseArgs

        def score(self, inp: ScoreInput) -> Verdict:
            return Verdict(True, 1.0, "")

    registry = ScorerRegistry()
    registry.register(Loose)
    assert registry.build({"loose": {"level": 2}}).scorer.args.level == 2  # type: ignore[attr-defined]
    with pytest.raises(ScorerSpecError) as info:
        registry.build({"loose": {"levle": 2}})
    assert (info.value.loc, info.value.problem, info.value.hint) == (
        ("loose", "levle"),
        "unknown option `levle`",
        "valid options: level",
    )


# --------------------------------------------------------------------------- scorers/ folder


def _project(tmp_path: Path, name: str = "proj") -> Path:
    folder = tmp_path / name / "scorers"
    shutil.copytree(FIXTURES, folder)
    return folder


def test_local_scorers_loaded_by_path(tmp_path: Path) -> None:
    folder = _project(tmp_path)
    registry = build_registry(folder)
    assert set(registry.names()) == {*BUILTIN_NAMES, "keyword_judge", "word_count"}  # _helpers.py skipped
    assert registry.origin("word_count") == "scorers/word_count.py"
    assert "not_marked" not in registry  # only @scorer classes are collected
    assert run(registry.build({"word_count": 2}), "two words") == Verdict(True, 1.0, "2 words, expected 2")
    err = spec_error(registry, {"word_count": {"exactly": -1}})
    assert err.loc == ("word_count", "exactly")
    judge = registry.build({"keyword_judge": {"keyword": "sure", "turns": "last"}})
    assert run(judge, "Sure thing") == Verdict(True, 1.0, "judge: keyword found")
    assert "word_count" not in build_registry(None)


def test_two_projects_do_not_leak(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    body = """
        from canary.scoring import Scorer, ScoreInput, Verdict, scorer

        STATE = []

        @scorer
        class Only(Scorer):
            name = "{name}"

            def score(self, inp: ScoreInput) -> Verdict:
                STATE.append(inp.text)
                return Verdict(True, 1.0, str(len(STATE)))
    """
    (a / "mine.py").write_text(textwrap.dedent(body.format(name="only_a")))
    (b / "mine.py").write_text(textwrap.dedent(body.format(name="only_b")))
    reg_a, reg_b, reg_a2 = build_registry(a), build_registry(b), build_registry(a)
    assert "only_a" in reg_a and "only_b" not in reg_a
    assert "only_b" in reg_b and "only_a" not in reg_b
    assert reg_a.get("only_a") is not reg_a2.get("only_a")  # a fresh module per load
    assert run(reg_a.build({"only_a": None}), "x").reason == "1"
    assert run(reg_a2.build({"only_a": None}), "x").reason == "1"  # module state is not shared


def test_broken_local_file_is_a_setup_error(tmp_path: Path) -> None:
    folder = tmp_path / "scorers"
    folder.mkdir()
    (folder / "a_ok.py").write_text("X = 1\n")
    (folder / "broken.py").write_text("import canary\nVALUE = 1 / 0\n")
    with pytest.raises(SetupError) as info:
        build_registry(folder)
    assert info.value.message == "scorers/broken.py: ZeroDivisionError: division by zero"
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert not [m for m in sys.modules if m.endswith("_broken")]
    (folder / "broken.py").write_text("def f(:\n")
    with pytest.raises(SetupError, match=r"^scorers/broken\.py: SyntaxError: "):
        build_registry(folder)


def test_local_name_clashes_are_setup_errors(tmp_path: Path) -> None:
    folder = tmp_path / "scorers"
    folder.mkdir()
    body = """
        from canary.scoring import Scorer, ScoreInput, Verdict, scorer

        @scorer
        class Mine(Scorer):
            name = "{name}"

            def score(self, inp: ScoreInput) -> Verdict:
                return Verdict(True, 1.0, "")
    """
    (folder / "mine.py").write_text(textwrap.dedent(body.format(name="contains")))
    with pytest.raises(SetupError, match=r"`contains` is defined twice: by built-in and by scorers/mine\.py"):
        build_registry(folder)
    (folder / "mine.py").write_text(textwrap.dedent(body.format(name="twice")))
    (folder / "other.py").write_text(textwrap.dedent(body.format(name="twice")))
    with pytest.raises(SetupError, match=r"by scorers/mine\.py and by scorers/other\.py"):
        build_registry(folder)


def test_missing_scorers_folder_is_fine_but_a_file_is_not(tmp_path: Path) -> None:
    assert build_registry(tmp_path / "nope").names() == BUILTIN_NAMES
    (tmp_path / "scorers").write_text("")
    with pytest.raises(SetupError, match="not a folder"):
        build_registry(tmp_path / "scorers")


# --------------------------------------------------------------------------- entry-point plugins


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real installed-looking distribution: a dist-info with entry_points.txt on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    tag = uuid.uuid4().hex[:8]
    modules: list[str] = []

    def install(entry_points: dict[str, str], files: dict[str, str]) -> None:
        dist = site / f"canary_plugin_{tag}-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: canary-plugin-{tag}\nVersion: 1.0\n")
        lines = "".join(f"{name} = {target.format(tag=tag)}\n" for name, target in entry_points.items())
        (dist / "entry_points.txt").write_text(f"[canary.scorers]\n{lines}")
        for stem, body in files.items():
            (site / f"{stem.format(tag=tag)}.py").write_text(textwrap.dedent(body))
            modules.append(stem.format(tag=tag))
        monkeypatch.syspath_prepend(str(site))

    yield install, tag
    for name in modules:
        sys.modules.pop(name, None)


PLUGIN_MODULE = """
    from canary.scoring import Scorer, ScoreInput, Verdict, scorer

    class Shout(Scorer):
        name = "shout"

        def score(self, inp: ScoreInput) -> Verdict:
            return Verdict(inp.text.isupper(), 1.0 if inp.text.isupper() else 0.0, "shouting check")

    @scorer
    class Polite(Scorer):
        name = "polite"

        def score(self, inp: ScoreInput) -> Verdict:
            return Verdict("please" in inp.text, 1.0, "politeness check")
"""


def test_entry_point_plugin_class_and_module(plugin_site) -> None:
    install, tag = plugin_site
    install({"shout": "plug_{tag}:Shout", "polite": "plug_{tag}"}, {"plug_{tag}": PLUGIN_MODULE})
    registry = build_registry(None)
    assert {"shout", "polite"} <= set(registry.names())
    assert (
        registry.origin("shout")
        == f"scorer plugin entry point `shout` (plug_{tag}:Shout, from canary-plugin-{tag} 1.0)"
    )
    assert run(registry.build({"shout": None}), "HEY") == Verdict(True, 1.0, "shouting check")
    assert run(registry.build({"polite": None}), "please") == Verdict(True, 1.0, "politeness check")


def test_broken_plugin_is_a_setup_error(plugin_site) -> None:
    install, tag = plugin_site
    install({"bad": "plugbad_{tag}"}, {"plugbad_{tag}": "raise ImportError('needs torch')\n"})
    with pytest.raises(SetupError) as info:
        build_registry(None)
    assert info.value.message == (
        f"scorer plugin entry point `bad` (plugbad_{tag}, from canary-plugin-{tag} 1.0): ImportError: needs torch"
    )


def test_plugin_naming_a_non_scorer_is_a_setup_error(plugin_site) -> None:
    install, tag = plugin_site
    install({"weird": "plugweird_{tag}:VALUE"}, {"plugweird_{tag}": "VALUE = 3\n"})
    with pytest.raises(SetupError, match="`weird`.*must name a Scorer subclass or a module, not int"):
        build_registry(None)


def test_plugin_clashing_with_builtin(plugin_site) -> None:
    install, tag = plugin_site
    body = PLUGIN_MODULE.replace('name = "shout"', 'name = "regex"')
    install({"re": "plugre_{tag}:Shout"}, {"plugre_{tag}": body})
    with pytest.raises(
        SetupError, match=r"`regex` is defined twice: by built-in and by scorer plugin entry point `re`"
    ):
        build_registry(None)
