"""Anthropic extended thinking: thinking blocks travel back unchanged in a tool-use continuation.

The real CLI and the real anthropic SDK against the real simulator, which (like the Messages API)
answers 400 when an assistant tool_use turn comes back without its thinking block."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from canary.config.models import SimBehaviour
from canary.sim import SimScript, SimServer
from canary.sim.anthropic_wire import THINKING_TEXT
from canary.store import Store
from tests.cli_helpers import config_with, remote_model, run_cli, script_the_sim
from tests.projects import WEATHER_TOOL, write_project
from tests.sim_helpers import ANTHROPIC_TOOLS, FAKE_KEY, TOOL

KEY = "sk-canary-test-thinking-7c3e"
THINKING_PARAMS = "params: {thinking: {type: enabled, budget_tokens: 1024}, max_tokens: 2048}\n"


@pytest.fixture
def key(monkeypatch) -> str:
    monkeypatch.setenv("CANARY_TEST_KEY", KEY)
    return KEY


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_tool_call_with_thinking_passes_end_to_end(tmp_path: Path, capsys, server, key, stream):
    path = write_project(
        tmp_path,
        config_with(remote_model("m", "mthink", server, extra=THINKING_PARAMS), stream=stream, attempts=1),
        {"tool.yaml": WEATHER_TOOL},
    )
    script_the_sim(server, path, {"mthink": SimBehaviour()})
    result = run_cli(capsys, "run", "--config", str(path))
    assert result.code == 0, result.out + result.err
    assert server.stats() == {"mthink": 2}  # the call, then the answer; no 400 in between
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        [row] = store.samples()
    assert row.outcome == "pass", row.reason
    assert [t.code for t in row.attempts] == ["ok", "ok"]
    assert len(row.turns) == 2 and row.turns[1].reply == "It is 18 °C in Paris."
    assert row.turns[0].reply == "" and row.turns[0].tool_calls[0].name == "get_weather"
    # The reasoning is echoed to the API only: not in any reply, output or stored byte.
    assert all(THINKING_TEXT not in t.reply for t in row.turns)
    assert THINKING_TEXT not in result.out + result.err
    assert THINKING_TEXT.encode() not in (tmp_path / "canary.db").read_bytes()


@pytest.fixture
def sdk(server: SimServer):
    import anthropic

    server.set_script(SimScript(behaviours={"mthink": SimBehaviour()}, rules=[_tool_rule()]))
    server.reset()
    with anthropic.Anthropic(base_url=server.anthropic_base_url, api_key=FAKE_KEY, max_retries=0) as client:
        yield client


def _tool_rule():
    from canary.sim.script import rule_for

    return rule_for(TOOL)


def _ask(client, messages: list[dict], *, stream: bool):
    kwargs = {
        "model": "mthink",
        "max_tokens": 2048,
        "messages": messages,
        "tools": ANTHROPIC_TOOLS,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    if stream:
        with client.messages.stream(**kwargs) as events:
            return events.get_final_message()
    return client.messages.create(**kwargs)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_sim_refuses_a_tool_continuation_that_dropped_thinking(sdk, stream):
    import anthropic

    first = [{"role": "user", "content": TOOL.prompt}]
    message = _ask(sdk, first, stream=stream)
    kinds = [b.type for b in message.content]
    assert kinds == ["thinking", "tool_use"]
    thinking, call = message.content
    assert thinking.thinking == THINKING_TEXT and thinking.signature.startswith("sig-")
    result = {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": call.id,
                "content": json.dumps(TOOL.tool_results["get_weather"]),
            }
        ],
    }
    tool_use = {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}
    kept = {"type": "thinking", "thinking": thinking.thinking, "signature": thinking.signature}

    with pytest.raises(anthropic.BadRequestError) as caught:
        _ask(sdk, [*first, {"role": "assistant", "content": [tool_use]}, result], stream=stream)
    assert caught.value.status_code == 400
    assert "thinking blocks must be preserved" in str(caught.value)

    answer = _ask(sdk, [*first, {"role": "assistant", "content": [kept, tool_use]}, result], stream=stream)
    assert [b.type for b in answer.content] == ["thinking", "text"]
    assert answer.content[1].text == TOOL.sim.answer


def test_sim_checks_the_thinking_budget(sdk):
    import anthropic

    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(
            model="mthink",
            max_tokens=1024,
            messages=[{"role": "user", "content": "hi"}],
            thinking={"type": "enabled", "budget_tokens": 1024},
        )
    assert "budget_tokens" in str(caught.value)
