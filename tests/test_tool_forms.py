"""Tools as people already write them: canary's form, Anthropic's and OpenAI's give the same
canary and the same content hash, and each runs against the simulator on both wires. The kind
follows from the keys; a `kind:` that contradicts them gets a hint, not "unknown key"."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary.config.load import load_project
from canary.config.models import SimBehaviour
from canary.store import Store
from tests.cli_helpers import config_with, remote_model, run_cli, script_the_sim
from tests.projects import SIM_CONFIG, write_project

SCHEMA = "{type: object, properties: {city: {type: string}, unit: {enum: [celsius, fahrenheit]}}, required: [city]}"
DESCRIPTION = "Current weather for a city."
TOOLS = {
    "canary": f"""\
  - name: get_weather
    description: {DESCRIPTION}
    parameters: {SCHEMA}
""",
    "anthropic": f"""\
  - name: get_weather
    description: {DESCRIPTION}
    input_schema: {SCHEMA}
""",
    "anthropic_custom": f"""\
  - type: custom
    name: get_weather
    description: {DESCRIPTION}
    input_schema: {SCHEMA}
""",
    "openai": f"""\
  - type: function
    function:
      name: get_weather
      description: {DESCRIPTION}
      parameters: {SCHEMA}
      strict: false
""",
    "openai_responses": f"""\
  - type: function
    name: get_weather
    description: {DESCRIPTION}
    parameters: {SCHEMA}
""",
}


def _tools(form: str) -> str:
    return TOOLS[form]


def _canary(form: str, *, kind: bool = True) -> str:
    return (
        "id: weather\n"
        + ("kind: tool_call\n" if kind else "")
        + "prompt: What's the weather in Paris?\n"
        + "tools:\n"
        + _tools(form)
        + "tool_results:\n  get_weather: {temp_c: 18}\n"
        + "scorers:\n  - tool_call: {name: get_weather, args: {city: Paris}}\n  - contains: '18'\n"
        + "sim:\n  call: {name: get_weather, arguments: {city: Paris}}\n  answer: It is 18 °C in Paris.\n"
    )


FORMS = ["canary", "anthropic", "anthropic_custom", "openai", "openai_responses"]


def test_every_tool_form_gives_the_same_canary_and_hash(tmp_path):
    loaded = {}
    for form in FORMS:
        for kind in (True, False):
            project = load_project(
                write_project(tmp_path / f"{form}-{kind}", canaries={"t.yaml": _canary(form, kind=kind)})
            )
            loaded[(form, kind)] = project.canaries[0]
    reference = loaded[("canary", True)]
    assert reference.canary.kind == "tool_call"
    assert reference.canary.tools[0].parameters["required"] == ["city"]
    for key, other in loaded.items():
        assert other.hash == reference.hash, key
        assert other.canary == reference.canary, key


def test_hash_of_canary_form_is_unchanged_by_this_feature(tmp_path):
    """Existing tool canaries keep their series: this canary hashed to 661e86bf44449d15 before
    vendor forms were accepted (computed with the previous release), and still does."""
    project = load_project(write_project(tmp_path, canaries={"t.yaml": _canary("canary")}))
    assert project.canaries[0].hash == "661e86bf44449d15"


@pytest.mark.parametrize("form", ["canary", "anthropic", "openai", "openai_responses"])
@pytest.mark.parametrize("wire", ["anthropic", "openai"])
def test_each_tool_form_runs_against_the_simulator(tmp_path, capsys, server, monkeypatch, form, wire):
    monkeypatch.setenv("CANARY_TEST_KEY", "sk-canary-test-tools")
    models = remote_model("m", "mtool", server, wire=wire)
    path = write_project(tmp_path, config_with(models), {"t.yaml": _canary(form, kind=False)})
    script_the_sim(server, path, {"mtool": SimBehaviour()})
    result = run_cli(capsys, "run", "--config", str(path), "--as-of", "2026-03-01", "--no-check", "-q")
    assert result.code == 0, result.err
    assert server.stats() == {"mtool": 2}  # the call, then the answer after the tool result
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        [row] = store.samples()
    assert row.outcome == "pass", row.reason
    assert row.turns[0].tool_calls[0].name == "get_weather" and "18" in row.turns[1].reply


def _validate(capsys, tmp_path: Path, canary: str):
    path = write_project(tmp_path, SIM_CONFIG, {"c.yaml": canary})
    return run_cli(capsys, "validate", "--config", str(path))


def test_validate_counts_inferred_kinds(tmp_path, capsys):
    multi = "id: chat\nturns:\n  - user: Hi, my name is Ada.\n  - user: What is my name?\nscorers:\n  - contains: Ada\n"
    path = write_project(tmp_path, SIM_CONFIG, {"t.yaml": _canary("openai", kind=False), "m.yaml": multi})
    result = run_cli(capsys, "validate", "--config", str(path))
    assert result.code == 0, result.err
    assert result.out.startswith("ok: 2 canaries (1 multi_turn, 1 tool_call)")


@pytest.mark.parametrize(
    ("canary", "message"),
    [
        (
            "id: x\nkind: single\nturns:\n  - user: hi\nscorers:\n  - contains: a\n",
            "prompts/c.yaml:2 kind: single but the canary has `turns:`; use kind: multi_turn or drop kind",
        ),
        (
            "id: x\nkind: single\nprompt: p\ntools: [{name: f}]\nscorers:\n  - tool_call: f\n",
            "prompts/c.yaml:2 kind: single but the canary has `tools:`; use kind: tool_call or drop kind",
        ),
        (
            "id: x\nkind: multi_turn\nprompt: p\ntools: [{name: f}]\nscorers:\n  - tool_call: f\n",
            "prompts/c.yaml:2 kind: multi_turn but the canary has `tools:`; use kind: tool_call or drop kind",
        ),
        (
            "id: x\nkind: tool_call\nturns:\n  - user: hi\nscorers:\n  - contains: a\n",
            "prompts/c.yaml:2 kind: tool_call but the canary has `turns:`; use kind: multi_turn or drop kind",
        ),
        (
            "id: x\nkind: multi_turn\nprompt: p\nscorers:\n  - contains: a\n",
            "prompts/c.yaml:2 kind: multi_turn but the canary has no `turns:`; write the conversation under "
            "`turns:`, or use kind: single or drop kind",
        ),
        (
            "id: x\nkind: tool_call\nprompt: p\nscorers:\n  - contains: a\n",
            "prompts/c.yaml:2 kind: tool_call but the canary has no `tools:`; declare the tools under `tools:`, "
            "or use kind: single or drop kind",
        ),
        (
            "id: x\nturns:\n  - user: hi\ntools: [{name: f}]\nscorers:\n  - contains: a\n",
            "prompts/c.yaml:2 turns: a canary has `turns:` (multi_turn) or `tools:` (tool_call), not both "
            "(conversations with tools are not supported: split it into two canaries)",
        ),
    ],
)
def test_kind_contradicting_the_keys_gets_a_hint(tmp_path, capsys, canary, message):
    result = _validate(capsys, tmp_path, canary)
    assert result.code == 65
    assert result.err.strip() == f"canary: error: {message}"


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        (
            "  - type: function\n    function: {name: f, strict: true}\n",
            "prompts/c.yaml:5 tools[0].function.strict: strict: true is not supported (remove `strict`: "
            "canary sends the schema as written, without OpenAI's strict mode)",
        ),
        (
            "  - type: function\n    function: {name: 'get weather'}\n",
            "prompts/c.yaml:5 tools[0].function.name: not a valid tool name "
            "(use letters, digits, _ and - (at most 64 characters))",
        ),
        (
            "  - type: function\n    function: {name: f, parameter: {}}\n",
            "prompts/c.yaml:5 tools[0].function.parameter: unknown key `parameter` "
            "(allowed here: name, description, parameters)",
        ),
        (
            "  - name: f\n    input_schema: [city]\n",
            "prompts/c.yaml:5 tools[0].input_schema: expected a mapping",
        ),
        (
            "  - name: f\n    input_schema: {}\n    parameters: {}\n",
            "prompts/c.yaml:6 tools[0].parameters: both `parameters` and `input_schema` given "
            "(give the JSON Schema once: `parameters` (canary, OpenAI) or `input_schema` (Anthropic))",
        ),
        (
            "  - type: function\n    name: f\n    function: {name: f}\n",
            "prompts/c.yaml:5 tools[0].name: unknown key `name` beside `function` "
            "(OpenAI's form is {type: function, function: {name, description, parameters}})",
        ),
    ],
)
def test_a_wrong_vendor_form_points_at_what_was_written(tmp_path, capsys, tools, message):
    canary = "id: x\nprompt: p\ntools:\n" + tools + "scorers:\n  - tool_call: f\n"
    result = _validate(capsys, tmp_path, canary)
    assert result.code == 65
    assert result.err.strip() == f"canary: error: {message}"
