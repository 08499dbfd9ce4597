"""Config and canary files: every mistake is one line naming file, line, field and a hint."""

from __future__ import annotations

import pytest

from canary.config.load import check_keys, load_project
from canary.errors import EXIT_CONFIG, EXIT_DATAERR, CanaryError, FileError, SetupError
from tests.projects import SIM_CONFIG, SINGLE, write_project


def _error(tmp_path, config=SIM_CONFIG, canaries=None) -> CanaryError:
    path = write_project(tmp_path, config, canaries)
    with pytest.raises(CanaryError) as info:
        load_project(path)
    return info.value


def test_valid_project_loads_with_hashes(tmp_path):
    project = load_project(write_project(tmp_path))
    assert [c.id for c in project.canaries] == ["capital"]
    assert len(project.canaries[0].hash) == 16
    assert [m.id for m in project.config.models] == ["sim-a", "sim-o"]


def test_malformed_yaml_reports_line(tmp_path):
    err = _error(tmp_path, canaries={"bad.yaml": "id: x\nprompt: [unclosed\nscorers: []\n"})
    assert isinstance(err, FileError) and err.exit_code == EXIT_DATAERR
    assert str(err).startswith("prompts/bad.yaml:3")
    assert "invalid YAML" in str(err)
    assert "at line 3, column 8" in str(err) and "flow sequence that starts at line 2, column 9" in str(err)


def test_scorer_args_wrong_type_points_at_field(tmp_path):
    canary = """\
    id: t
    kind: tool_call
    prompt: call it
    tools:
      - name: f
    scorers:
      - tool_call:
          name: f
          args: [1, 2]
    """
    err = _error(tmp_path, canaries={"tools.yaml": canary})
    assert err.exit_code == EXIT_DATAERR
    assert str(err).startswith("prompts/tools.yaml:9 scorers[0].tool_call.args: expected a mapping")


def test_unknown_key_is_rejected_with_allowed_keys(tmp_path):
    err = _error(tmp_path, canaries={"c.yaml": SINGLE + "temperature: 0\n"})
    assert str(err).startswith("prompts/c.yaml:8 temperature: unknown key `temperature`")
    assert "allowed here:" in str(err) and "prompt" in str(err)


def test_unknown_key_in_config(tmp_path):
    err = _error(tmp_path, config=SIM_CONFIG.replace("  samples: 1", "  sample: 1"))
    assert "canary.yaml:3 defaults.sample: unknown key `sample`" in str(err)
    assert err.exit_code == EXIT_DATAERR


def test_unknown_scorer_exits_78(tmp_path):
    err = _error(tmp_path, canaries={"c.yaml": SINGLE.replace("contains:", "containz:")})
    assert err.exit_code == EXIT_CONFIG
    assert "prompts/c.yaml:4 scorers[0].containz: unknown scorer `containz`" in str(err)


def test_duplicate_canary_ids_exit_78_naming_both(tmp_path):
    err = _error(tmp_path, canaries={"a.yaml": SINGLE, "b.yaml": SINGLE})
    assert isinstance(err, SetupError) and err.exit_code == EXIT_CONFIG
    assert "prompts/b.yaml:1" in str(err) and "prompts/a.yaml:1" in str(err)


def test_duplicate_model_ids_exit_78(tmp_path):
    config = SIM_CONFIG.replace("id: sim-o", "id: sim-a")
    err = _error(tmp_path, config=config)
    assert err.exit_code == EXIT_CONFIG and "duplicate model id `sim-a`" in str(err)


def test_unknown_kind(tmp_path):
    err = _error(tmp_path, canaries={"c.yaml": "kind: chat\n" + SINGLE})
    assert str(err).startswith("prompts/c.yaml:1 kind: unknown kind `chat`")


def test_missing_required_field(tmp_path):
    err = _error(tmp_path, canaries={"c.yaml": "id: x\nscorers:\n  - contains: a\n"})
    assert "prompt: required field is missing" in str(err)


def test_duplicate_yaml_key(tmp_path):
    err = _error(tmp_path, canaries={"c.yaml": SINGLE + "id: again\n"})
    assert "prompts/c.yaml:8 id: duplicate key" in str(err)


def test_multi_turn_scorer_turn_reference_checked(tmp_path):
    canary = """\
    id: mt
    kind: multi_turn
    turns:
      - user: one
      - user: two
    scorers:
      - contains: {any: [x], turns: [3]}
    """
    err = _error(tmp_path, canaries={"mt.yaml": canary})
    assert "no turn `3`" in str(err) and "prompts/mt.yaml:7" in str(err)


def test_openai_compatible_needs_base_url(tmp_path):
    config = SIM_CONFIG + "  - id: gw\n    provider: openai_compatible\n    model: m\n"
    err = _error(tmp_path, config=config)
    assert "needs base_url" in str(err) and "canary.yaml:" in str(err)


def test_missing_key_variable_names_variable_not_value(tmp_path, monkeypatch):
    config = (
        SIM_CONFIG
        + "  - id: real\n    provider: anthropic\n    model: claude\n    api_key_env: CANARY_TEST_NOPE_KEY\n"
    )
    monkeypatch.delenv("CANARY_TEST_NOPE_KEY", raising=False)
    project = load_project(write_project(tmp_path, config))
    with pytest.raises(SetupError) as info:
        check_keys(project, project.config.models)
    assert info.value.exit_code == EXIT_CONFIG
    assert "CANARY_TEST_NOPE_KEY is not set" in str(info.value)
    assert "canary.yaml:" in str(info.value)


def test_editing_a_canary_changes_its_hash_but_description_does_not(tmp_path):
    first = load_project(write_project(tmp_path / "a")).canaries[0].hash
    described = load_project(
        write_project(tmp_path / "b", canaries={"c.yaml": SINGLE + "description: new words\n"})
    )
    edited = load_project(
        write_project(tmp_path / "c", canaries={"c.yaml": SINGLE.replace("France?", "France today?")})
    )
    assert described.canaries[0].hash == first
    assert edited.canaries[0].hash != first


def test_shipped_pack_is_valid():
    from pathlib import Path

    project = load_project(Path(__file__).resolve().parents[1] / "canary.yaml")
    kinds = [c.canary.kind for c in project.canaries]
    assert kinds.count("single") >= 2 and kinds.count("multi_turn") >= 2 and kinds.count("tool_call") >= 2
    assert all(c.canary.sim is not None for c in project.canaries)
