"""YAML 1.1 never changes an expected answer: `canary validate` refuses a misread scalar with the
file, the line, the field and the quoted form to write; quoted, the text reaches the scorer (and a
run against the simulator) exactly as typed. Numeric scorers still take numbers."""

from __future__ import annotations

import textwrap
from datetime import date

import pytest

from canary.config.load import load_project
from canary.store import Store
from tests.cli_helpers import run_cli
from tests.projects import SIM_CONFIG, write_project


def _canary(scorer: str, *, answer: str = "1.10") -> str:
    return textwrap.dedent(
        f"""\
        id: version
        prompt: Which version is current? Answer with the version only.
        scorers:
          - {scorer}
        sim:
          answer: "{answer}"
        """
    )


def _validate(capsys, tmp_path, canaries: dict[str, str], config: str = SIM_CONFIG):
    path = write_project(tmp_path, config, canaries)
    return run_cli(capsys, "validate", "--config", str(path)), path


@pytest.mark.parametrize(
    ("scorer", "message"),
    [
        ("exact: 1.10", 'scorers[0].exact: YAML read 1.10 as the number 1.1; quote it: "1.10"'),
        (
            "exact: {value: 1.10}",
            'scorers[0].exact.value: YAML read 1.10 as the number 1.1; quote it: "1.10"',
        ),
        ("contains: [a, 012]", 'scorers[0].contains[1]: YAML read 012 as the number 10; quote it: "012"'),
        (
            "contains: {any: 0x1F}",
            'scorers[0].contains.any: YAML read 0x1F as the number 31; quote it: "0x1F"',
        ),
        ("exact: 1e3", 'scorers[0].exact: YAML 1.2 reads 1e3 as the number 1000.0; quote it: "1e3"'),
        ("exact: yes", 'scorers[0].exact: YAML read yes as the boolean true; quote it: "yes"'),
        (
            "not_contains: [off]",
            'scorers[0].not_contains[0]: YAML read off as the boolean false; quote it: "off"',
        ),
        ("exact: 2026-03-01", 'scorers[0].exact: YAML read 2026-03-01 as a date; quote it: "2026-03-01"'),
        ("exact: ~", 'scorers[0].exact: YAML read ~ as null (no value); quote it: "~"'),
        (
            "regex: {pattern: null}",
            'scorers[0].regex.pattern: YAML read null as null (no value); quote it: "null"',
        ),
        (
            "any_of: [{exact: 1.10}]",
            'scorers[0].any_of[0].exact: YAML read 1.10 as the number 1.1; quote it: "1.10"',
        ),
        (
            "numeric: {value: 012}",
            "scorers[0].numeric.value: YAML read 012 as the number 10 (YAML 1.2: 12); "
            "write 12 or 10 so every YAML reader agrees",
        ),
    ],
)
def test_misread_expected_answer_exits_65_with_line_and_quoted_form(tmp_path, capsys, scorer, message):
    result, _ = _validate(capsys, tmp_path, {"version.yaml": _canary(scorer)})
    assert result.code == 65
    assert result.err.strip() == f"canary: error: prompts/version.yaml:4 {message}"
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("scorer", "expected"),
    [
        ('exact: "1.10"', "1.10"),
        ("exact: '012'", "012"),
        ('exact: "0x1F"', "0x1F"),
        ('exact: "1e3"', "1e3"),
        ('exact: "yes"', "yes"),
        ('exact: "2026-03-01"', "2026-03-01"),
        ('exact: "~"', "~"),
        ("exact: 42", "42"),  # a number that reads back as typed is its text
        ("exact: 3.5", "3.5"),
    ],
)
def test_quoted_or_unambiguous_text_reaches_the_scorer_as_typed(tmp_path, capsys, scorer, expected):
    result, path = _validate(capsys, tmp_path, {"version.yaml": _canary(scorer)})
    assert result.code == 0, result.err
    [canary] = load_project(path).canaries
    assert canary.scorers[0].scorer.args.value == expected


@pytest.mark.parametrize(("value", "number"), [("1.10", 1.1), ("1e3", 1000.0), ("0x1F", 31), ("-2.50", -2.5)])
def test_numeric_scorer_still_takes_numbers(tmp_path, capsys, value, number):
    result, path = _validate(capsys, tmp_path, {"n.yaml": _canary(f"numeric: {value}")})
    assert result.code == 0, result.err
    assert load_project(path).canaries[0].scorers[0].scorer.args.value == number


@pytest.mark.parametrize(
    ("canary", "message"),
    [
        (
            "id: x\nprompt: yes\nscorers:\n  - exact: a\n",
            'prompts/c.yaml:2 prompt: YAML read yes as the boolean true; quote it: "yes"',
        ),
        (
            "id: x\nprompt: p\ntags: [2026]\nscorers:\n  - exact: a\n",
            'prompts/c.yaml:3 tags[0]: YAML read 2026 as the number 2026; quote it: "2026"',
        ),
        (
            "id: x\nprompt: p\nscorers:\n  - exact: a\nsim: {answer: 1.10}\n",
            'prompts/c.yaml:5 sim.answer: YAML read 1.10 as the number 1.1; quote it: "1.10"',
        ),
        (  # JSON values: a date can never equal what a model sends
            "id: x\nprompt: p\ntools: [{name: f}]\nscorers:\n  - tool_call: {name: f, args: {day: 2026-03-01}}\n",
            "prompts/c.yaml:5 scorers[0].tool_call.args.day: YAML read 2026-03-01 as a date, which JSON has no "
            'form for; quote it: "2026-03-01"',
        ),
        (
            "id: x\nprompt: p\ntools: [{name: f}]\nscorers:\n  - tool_call: {name: f, args: {metric: no}}\n",
            "prompts/c.yaml:5 scorers[0].tool_call.args.metric: YAML read no as the boolean false; "
            'write false for a boolean, or quote it: "no"',
        ),
        (
            "id: x\nprompt: p\ntools:\n  - name: f\n    parameters: {properties: {u: {enum: [on, off]}}}\n"
            "scorers:\n  - tool_call: f\n",
            "prompts/c.yaml:5 tools[0].parameters.properties.u.enum[0]: YAML read on as the boolean true; "
            'write true for a boolean, or quote it: "on"',
        ),
        (
            "id: x\nprompt: p\ntools: [{name: f}]\ntool_results: {200: ok}\nscorers:\n  - tool_call: f\n",
            'prompts/c.yaml:4 tool_results.200: YAML read the key 200 as the number 200; quote it: "200"',
        ),
    ],
)
def test_any_text_field_and_json_value_is_guarded(tmp_path, capsys, canary, message):
    result, _ = _validate(capsys, tmp_path, {"c.yaml": canary})
    assert result.code == 65
    assert result.err.strip() == f"canary: error: {message}"


def test_json_values_keep_numbers_booleans_and_null(tmp_path, capsys):
    canary = "id: x\nprompt: p\ntools: [{name: f}]\nscorers:\n  - tool_call: {name: f, args: {n: 1.10, b: true, z: ~}}\n"
    result, path = _validate(capsys, tmp_path, {"c.yaml": canary})
    assert result.code == 0, result.err
    assert load_project(path).canaries[0].scorers[0].scorer.args.args == {"n": 1.1, "b": True, "z": None}


def test_config_text_field_is_guarded(tmp_path, capsys):
    config = SIM_CONFIG.replace("model: sim-o", "model: 4.10")
    result, path = _validate(capsys, tmp_path, {"c.yaml": _canary('exact: "1.10"')}, config)
    assert result.code == 65
    assert result.err.strip() == (
        f'canary: error: {path}:16 models[1].model: YAML read 4.10 as the number 4.1; quote it: "4.10"'
    )


def test_yaml_syntax_error_names_where_the_bracket_opened_and_where_parsing_broke(tmp_path, capsys):
    canary = "id: x\nprompt: [unclosed\nscorers:\n  - exact: '4'\n"
    result, _ = _validate(capsys, tmp_path, {"c.yaml": canary})
    assert result.code == 65
    assert result.err.strip() == (
        "canary: error: prompts/c.yaml:3: invalid YAML: expected ',' or ']', but got ':' at line 3, column 8, "
        "while parsing a flow sequence that starts at line 2, column 9 (check indentation and quoting)"
    )
    assert len(result.err.strip().splitlines()) == 1


def test_quoted_answer_passes_a_run_against_the_simulator(tmp_path, capsys):
    """End to end: the simulator answers "1.10" and the quoted expectation matches it exactly
    (unquoted, YAML would have expected "1.1" and every sample would fail)."""
    path = write_project(tmp_path, SIM_CONFIG, {"version.yaml": _canary('exact: "1.10"')})
    run = run_cli(capsys, "run", "--config", str(path), "--as-of", "2026-03-01", "--no-check", "-q")
    assert run.code == 0, run.err
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        rows = store.samples(day=date(2026, 3, 1))
    assert [(r.model_id, r.outcome, r.turns[0].reply) for r in rows] == [
        ("sim-a", "pass", "1.10"),
        ("sim-o", "pass", "1.10"),
    ]
