"""The simulator, driven through the real anthropic and openai SDKs over loopback HTTP."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import anthropic
import httpx
import openai
import pytest
from sim_helpers import (
    CANARIES,
    FAKE_KEY,
    MULTI,
    SINGLE,
    TOOL,
    UNICODE,
    anthropic_tool_round,
    ask_anthropic,
    ask_openai,
    headers,
    openai_tool_round,
    user,
)

from canary.config.models import ModelConfig, SimBehaviour, SimFault, SimPeriod
from canary.errors import SetupError
from canary.sim import SimScript, SimServer, script_from_project
from canary.sim.replies import HUGE_PATTERN
from canary.sim.script import rule_for

BOTH = ["anthropic", "openai"]
MODES = [(w, s) for w in BOTH for s in (False, True)]
MODE_IDS = [f"{w}-{'stream' if s else 'plain'}" for w, s in MODES]


@pytest.fixture(scope="module")
def claude(server: SimServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key=FAKE_KEY, max_retries=0)


@pytest.fixture(scope="module")
def gpt(server: SimServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key=FAKE_KEY, max_retries=0)


Load = Callable[..., SimServer]


@pytest.fixture
def sim(server: SimServer) -> Load:
    """Install a fresh script (default: model `m` with default behaviour) and zero the counters."""

    def load(
        behaviours: dict[str, SimBehaviour] | None = None,
        default: SimBehaviour | None = None,
        **one: SimBehaviour,
    ) -> SimServer:
        found = behaviours if behaviours is not None else {"m": SimBehaviour(), **one}
        rules = [r for r in (rule_for(c) for c in CANARIES) if r is not None]
        server.set_script(SimScript(behaviours=found, rules=rules, default_behaviour=default))
        server.reset()
        return server

    return load


@pytest.fixture
def ask(claude: anthropic.Anthropic, gpt: openai.OpenAI) -> Callable[..., object]:
    """ask(wire, model, messages, **kw) through the matching SDK."""

    def call(wire: str, model: str, messages: list[dict], **kw: object):
        if wire == "anthropic":
            return ask_anthropic(claude, model, messages, **kw)
        return ask_openai(gpt, model, messages, **kw)

    return call


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize(("wire", "stream"), MODES, ids=MODE_IDS)
def test_single_canary_gets_its_answer(sim: Load, ask, wire: str, stream: bool) -> None:
    sim()
    got = ask(wire, "m", [user(SINGLE.prompt)], stream=stream)
    assert got.text == "Paris"
    assert got.stop == ("end_turn" if wire == "anthropic" else "stop")
    assert got.model == "m"
    assert got.input_tokens == math.ceil(len(SINGLE.prompt) / 4)
    assert got.output_tokens == math.ceil(len("Paris") / 4)
    assert got.calls == []


@pytest.mark.parametrize(("wire", "stream"), MODES, ids=MODE_IDS)
def test_unicode_round_trip(sim: Load, ask, wire: str, stream: bool) -> None:
    sim()
    assert ask(wire, "m", [user(UNICODE.prompt)], stream=stream).text == UNICODE.sim.answer


@pytest.mark.parametrize(("wire", "stream"), MODES, ids=MODE_IDS)
def test_unmatched_prompt_gets_a_generic_reply(sim: Load, ask, wire: str, stream: bool) -> None:
    sim()
    assert (
        ask(wire, "m", [user("Something nobody scripted")], stream=stream).text == "Simulated reply from m."
    )


def test_anthropic_blocks_and_system_list_match_like_a_string(sim: Load, claude: anthropic.Anthropic) -> None:
    sim()
    content = [{"type": "text", "text": SINGLE.prompt}]
    got = ask_anthropic(
        claude,
        "m",
        [{"role": "user", "content": content}],
        system=[{"type": "text", "text": "Be brief."}],
        thinking={"type": "disabled"},
    )
    assert got.text == "Paris"
    assert got.input_tokens == math.ceil((len(SINGLE.prompt) + len("Be brief.")) / 4)


def test_openai_content_parts_and_unknown_fields_are_accepted(sim: Load, gpt: openai.OpenAI) -> None:
    sim()
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": SINGLE.prompt}]},
    ]
    got = ask_openai(
        gpt,
        "m",
        messages,
        reasoning_effort="low",
        temperature=0.2,
        max_completion_tokens=64,
        extra_body={"some_future_field": True},
    )
    assert got.text == "Paris"


@pytest.mark.parametrize(("wire", "stream"), MODES, ids=MODE_IDS)
def test_multi_turn_picks_the_answer_for_the_turn(sim: Load, ask, wire: str, stream: bool) -> None:
    sim()
    history: list[dict] = []
    replies = []
    for turn in [*MULTI.turns, MULTI.turns[-1]]:  # one turn past the script
        history.append(user(turn.user))
        text = ask(wire, "m", history, stream=stream).text
        replies.append(text)
        history.append({"role": "assistant", "content": text})
    assert replies == ["Noted: 42.", "50", "25", "Simulated reply from m."]


def test_multi_turn_wrong_answers(sim: Load, ask) -> None:
    sim(m=SimBehaviour(quality=0.0))
    history = [user(MULTI.turns[0].user), {"role": "assistant", "content": "ok"}, user(MULTI.turns[1].user)]
    assert ask("anthropic", "m", history[:1]).text == "I am not sure."  # turn 1 has no `wrong`
    assert ask("openai", "m", history).text == "48"


# --------------------------------------------------------------------------- tools


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_tool_call(sim: Load, claude: anthropic.Anthropic, stream: bool) -> None:
    sim()
    got = ask_anthropic(claude, "m", [user(TOOL.prompt)], tools=True, stream=stream)
    assert got.calls == [("get_weather", {"city": "Paris"})]
    assert got.stop == "tool_use"
    assert got.text == ""


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_openai_tool_call(sim: Load, gpt: openai.OpenAI, stream: bool) -> None:
    sim()
    got = ask_openai(gpt, "m", [user(TOOL.prompt)], tools=True, stream=stream)
    assert [(name, json.loads(args)) for name, args in got.calls] == [("get_weather", {"city": "Paris"})]
    assert got.stop == "tool_calls"


def test_openai_stream_helper_accumulates_tool_calls(sim: Load, gpt: openai.OpenAI) -> None:
    sim()
    kwargs = {
        "model": "m",
        "messages": [user(TOOL.prompt)],
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": TOOL.tools[0].parameters}}
        ],
    }
    with gpt.chat.completions.stream(**kwargs) as events:
        final = events.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    assert call.id.startswith("call_")


@pytest.mark.parametrize(("wire", "stream"), MODES, ids=MODE_IDS)
def test_tool_result_gets_the_final_answer(sim: Load, ask, wire: str, stream: bool) -> None:
    sim(m=SimBehaviour(quality=0.0))  # the final answer is not subject to the quality roll
    result = TOOL.tool_results["get_weather"]
    rounds = (
        anthropic_tool_round("toolu_1", result)
        if wire == "anthropic"
        else openai_tool_round("call_1", result)
    )
    got = ask(wire, "m", [user(TOOL.prompt), *rounds], tools=True, stream=stream)
    assert got.text == TOOL.sim.answer
    assert got.calls == []


@pytest.mark.parametrize("wire", BOTH)
def test_low_quality_tool_call_uses_the_wrong_call(sim: Load, ask, wire: str) -> None:
    sim(m=SimBehaviour(quality=0.0))
    name, args = ask(wire, "m", [user(TOOL.prompt)], tools=True).calls[0]
    assert name == "get_weather"
    assert (args if isinstance(args, dict) else json.loads(args)) == {"city": "Lyon"}


def test_low_quality_tool_call_without_wrong_call_answers_in_text(server: SimServer, claude) -> None:
    canary = TOOL.model_copy(update={"sim": TOOL.sim.model_copy(update={"wrong_call": None})})
    server.set_script(SimScript({"m": SimBehaviour(quality=0.0)}, [rule_for(canary)]))
    got = ask_anthropic(claude, "m", [user(TOOL.prompt)], tools=True)
    assert got.calls == [] and got.text == "I am not sure." and got.stop == "end_turn"


# --------------------------------------------------------------------------- quality


@pytest.mark.parametrize("wire", BOTH)
def test_quality_zero_always_wrong_and_one_always_right(sim: Load, ask, wire: str) -> None:
    sim({"bad": SimBehaviour(quality=0.0), "good": SimBehaviour(quality=1.0)})
    assert {ask(wire, "bad", [user(SINGLE.prompt)]).text for _ in range(5)} == {"Lyon"}
    assert {ask(wire, "good", [user(SINGLE.prompt)]).text for _ in range(5)} == {"Paris"}


def test_quality_rolls_are_reproducible(sim: Load, ask) -> None:
    def draws() -> list[str]:
        return [ask("openai", "m", [user(SINGLE.prompt)], day="2025-03-01").text for _ in range(30)]

    server = sim(m=SimBehaviour(quality=0.5, seed=7))
    first = draws()
    assert set(first) == {"Paris", "Lyon"}  # deterministic for seed 7
    assert draws() != first  # the sequence moves on...
    server.reset()
    assert draws() == first  # ...and restarts after a reset
    sim(m=SimBehaviour(quality=0.5, seed=7))
    assert draws() == first  # a fresh script replays it too
    sim(m=SimBehaviour(quality=0.5, seed=8))
    assert draws() != first


@pytest.mark.parametrize("wire", BOTH)
def test_periods_override_by_simulated_day(sim: Load, ask, wire: str) -> None:
    period = SimPeriod(
        from_day="2025-02-10",
        to_day="2025-02-12",
        quality=0.0,
        served_model="m-quantized",
        fingerprint="fp_new",
        token_inflation=3.0,
    )
    sim(m=SimBehaviour(periods=[period]))
    before = ask(wire, "m", [user(SINGLE.prompt)], day="2025-02-09")
    inside = ask(wire, "m", [user(SINGLE.prompt)], day="2025-02-12")
    after = ask(wire, "m", [user(SINGLE.prompt)], day="2025-02-13")
    assert (before.text, inside.text, after.text) == ("Paris", "Lyon", "Paris")
    assert (before.model, inside.model) == ("m", "m-quantized")
    assert inside.output_tokens == math.ceil(len("Lyon") / 4 * 3.0)
    if wire == "openai":
        assert (before.fingerprint, inside.fingerprint) == ("fp_sim", "fp_new")


def test_max_tokens_cuts_the_answer(server: SimServer, ask) -> None:
    canary = SINGLE.model_copy(update={"sim": SINGLE.sim.model_copy(update={"answer": "x" * 400})})
    server.set_script(SimScript({"m": SimBehaviour()}, [rule_for(canary)]))
    claude = ask("anthropic", "m", [user(SINGLE.prompt)], max_tokens=10)
    assert (claude.text, claude.stop, claude.output_tokens) == ("x" * 40, "max_tokens", 10)
    gpt = ask("openai", "m", [user(SINGLE.prompt)], stream=True, max_tokens=10)
    assert (gpt.text, gpt.stop, gpt.output_tokens) == ("x" * 40, "length", 10)


def test_invalid_day_header_is_a_400(sim: Load, claude: anthropic.Anthropic) -> None:
    sim()
    with pytest.raises(anthropic.BadRequestError):
        ask_anthropic(claude, "m", [user("hi")], day="yesterday")


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("status", "claude_error", "gpt_error"),
    [
        (529, anthropic.OverloadedError, openai.InternalServerError),
        (500, anthropic.InternalServerError, openai.InternalServerError),
        (502, anthropic.InternalServerError, openai.InternalServerError),
        (503, anthropic.ServiceUnavailableError, openai.InternalServerError),
        (504, anthropic.GatewayTimeoutError, openai.InternalServerError),
        (429, anthropic.RateLimitError, openai.RateLimitError),
        (401, anthropic.AuthenticationError, openai.AuthenticationError),
        (400, anthropic.BadRequestError, openai.BadRequestError),
    ],
)
def test_status_faults(sim: Load, ask, status: int, claude_error: type, gpt_error: type) -> None:
    sim(m=SimBehaviour(faults=[SimFault(kind="status", status=status, retry_after_s=7)]))
    with pytest.raises(claude_error) as caught:
        ask("anthropic", "m", [user("hi")])
    assert caught.value.status_code == status
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body["type"] == "error"
    with pytest.raises(gpt_error) as caught_gpt:
        ask("openai", "m", [user("hi")], stream=True)
    assert caught_gpt.value.status_code == status
    assert caught_gpt.value.response.headers["retry-after-ms"] == "7000"


def test_overloaded_body_and_no_retry_after_by_default(sim: Load, ask) -> None:
    sim(m=SimBehaviour(faults=[SimFault(kind="status", status=529)]))
    with pytest.raises(anthropic.OverloadedError) as caught:
        ask("anthropic", "m", [user("hi")], stream=True)
    assert caught.value.type == "overloaded_error"
    assert "retry-after" not in caught.value.response.headers


def test_quota_faults_map_to_spend_limit_errors(sim: Load, ask) -> None:
    sim(m=SimBehaviour(faults=[SimFault(kind="quota")]))
    with pytest.raises(anthropic.EnforcedSpendLimitReachedError) as caught:
        ask("anthropic", "m", [user("hi")])
    assert caught.value.status_code == 429 and caught.value.error_code == "enforced_spend_limit_reached"
    with pytest.raises(openai.RateLimitError) as caught_gpt:
        ask("openai", "m", [user("hi")])
    assert caught_gpt.value.code == "insufficient_quota" and caught_gpt.value.type == "insufficient_quota"


@pytest.mark.parametrize(("wire", "stream"), MODES, ids=MODE_IDS)
def test_timeout_fault_holds_until_the_client_gives_up(
    sim: Load, claude, gpt, wire: str, stream: bool
) -> None:
    sim(m=SimBehaviour(faults=[SimFault(kind="timeout")]))
    if wire == "anthropic":
        with pytest.raises(anthropic.APITimeoutError):
            ask_anthropic(claude.with_options(timeout=0.2), "m", [user("hi")], stream=stream)
    else:
        with pytest.raises(openai.APITimeoutError):
            ask_openai(gpt.with_options(timeout=0.2), "m", [user("hi")], stream=stream)


def test_mid_stream_fault_anthropic(sim: Load, claude: anthropic.Anthropic) -> None:
    sim(m=SimBehaviour(faults=[SimFault(kind="mid_stream")]))
    seen = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        for event in claude.messages.create(
            model="m", max_tokens=64, messages=[user(SINGLE.prompt)], stream=True
        ):
            seen.append(event.type)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    assert caught.value.status_code == 200
    assert seen[0] == "message_start" and "content_block_delta" in seen
    with pytest.raises(anthropic.APIConnectionError):
        ask_anthropic(claude, "m", [user(SINGLE.prompt)])


def test_mid_stream_fault_openai(sim: Load, gpt: openai.OpenAI) -> None:
    sim(m=SimBehaviour(faults=[SimFault(kind="mid_stream")]))
    text = ""
    with pytest.raises(openai.APIError) as caught:
        for chunk in gpt.chat.completions.create(
            model="m", messages=[user("a long question " * 20)], stream=True
        ):
            text += chunk.choices[0].delta.content or ""
    assert not isinstance(caught.value, openai.APIStatusError)
    assert caught.value.type == "server_error"
    assert text  # some content arrived before the error
    with pytest.raises(openai.APIConnectionError):
        ask_openai(gpt, "m", [user(SINGLE.prompt)])


@pytest.mark.parametrize(("wire", "stream"), MODES, ids=MODE_IDS)
def test_empty_fault(sim: Load, ask, wire: str, stream: bool) -> None:
    sim(m=SimBehaviour(faults=[SimFault(kind="empty")]))
    got = ask(wire, "m", [user(SINGLE.prompt)], stream=stream)
    assert (got.text, got.calls, got.output_tokens) == ("", [], 0)


@pytest.mark.parametrize(("wire", "stream"), MODES, ids=MODE_IDS)
def test_huge_fault(sim: Load, ask, wire: str, stream: bool) -> None:
    sim(m=SimBehaviour(faults=[SimFault(kind="huge", size=300_000)]))
    got = ask(wire, "m", [user(SINGLE.prompt)], stream=stream, max_tokens=1024)
    assert len(got.text) == 300_000
    assert got.text.startswith(HUGE_PATTERN) and "日本語" in got.text and "ü" in got.text


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_bad_tool_args_openai(sim: Load, gpt: openai.OpenAI, stream: bool) -> None:
    sim(m=SimBehaviour(faults=[SimFault(kind="bad_tool_args")]))
    got = ask_openai(gpt, "m", [user(TOOL.prompt)], tools=True, stream=stream)
    ((name, raw),) = got.calls
    assert name == "get_weather" and "Paris" in raw and got.stop == "tool_calls"
    with pytest.raises(ValueError):
        json.loads(raw)


def test_bad_tool_args_anthropic(sim: Load, claude: anthropic.Anthropic) -> None:
    sim(m=SimBehaviour(faults=[SimFault(kind="bad_tool_args")]))
    # non-streaming: the broken arguments arrive as a string `input`, passed through unvalidated
    got = ask_anthropic(claude, "m", [user(TOOL.prompt)], tools=True)
    ((name, raw),) = got.calls
    assert name == "get_weather" and isinstance(raw, str) and "Paris" in raw
    with pytest.raises(ValueError):
        json.loads(raw)
    # streaming: the raw input_json_delta pieces join to the same broken text
    events = claude.messages.create(model="m", max_tokens=64, messages=[user(TOOL.prompt)], stream=True)
    joined = "".join(e.delta.partial_json for e in events if e.type == "content_block_delta")
    assert joined == raw


def test_times_faults_fire_n_times_then_recover(sim: Load, ask) -> None:
    server = sim(m=SimBehaviour(faults=[SimFault(kind="status", status=503, times=2)]))
    for _ in range(2):
        with pytest.raises(anthropic.ServiceUnavailableError):
            ask("anthropic", "m", [user(SINGLE.prompt)])
    assert ask("anthropic", "m", [user(SINGLE.prompt)]).text == "Paris"
    server.reset()
    with pytest.raises(openai.InternalServerError):
        ask("openai", "m", [user(SINGLE.prompt)])


def test_first_applicable_fault_wins_and_days_limit_faults(sim: Load, ask) -> None:
    faults = [
        SimFault(kind="status", status=500, from_day="2025-05-01", to_day="2025-05-01"),
        SimFault(kind="empty", rate=0.0),
        SimFault(kind="status", status=429, times=1),
    ]
    sim(m=SimBehaviour(faults=faults))
    with pytest.raises(anthropic.InternalServerError):
        ask("anthropic", "m", [user(SINGLE.prompt)], day="2025-05-01")
    with pytest.raises(anthropic.RateLimitError):
        ask("anthropic", "m", [user(SINGLE.prompt)], day="2025-05-02")
    assert ask("anthropic", "m", [user(SINGLE.prompt)], day="2025-05-02").text == "Paris"


# --------------------------------------------------------------------------- models and stats


@pytest.mark.parametrize(
    ("wire", "error"), [("anthropic", anthropic.NotFoundError), ("openai", openai.NotFoundError)]
)
def test_unknown_model_is_a_404(sim: Load, ask, wire: str, error: type) -> None:
    sim()
    with pytest.raises(error) as caught:
        ask(wire, "no-such-model", [user("hi")])
    assert "no-such-model" in str(caught.value)


def test_default_behaviour_serves_any_model_name(sim: Load, ask) -> None:
    sim({}, default=SimBehaviour(served_model="catch-all"))
    got = ask("openai", "whatever-1", [user(SINGLE.prompt)])
    assert (got.text, got.model) == ("Paris", "catch-all")


def test_stats_count_every_request(sim: Load, ask) -> None:
    server = sim(
        {"a": SimBehaviour(), "b": SimBehaviour(faults=[SimFault(kind="status", status=500, times=1)])}
    )
    for _ in range(3):
        ask("anthropic", "a", [user("hi")])
    ask("openai", "a", [user("hi")], stream=True)
    with pytest.raises(openai.InternalServerError):
        ask("openai", "b", [user("hi")])
    ask("openai", "b", [user("hi")])
    with pytest.raises(anthropic.NotFoundError):
        ask("anthropic", "c", [user("hi")])
    expected = {"a": 4, "b": 2, "c": 1}
    assert server.stats() == expected
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/_sim/stats").json() == {"requests": expected, "total": 7}
        assert http.get("/healthz").status_code == 200
        assert http.post("/_sim/reset").status_code == 200
        assert http.get("/_sim/stats").json() == {"requests": {}, "total": 0}
    assert server.stats() == {}


def test_request_ids_are_exposed_to_the_sdks(
    sim: Load, claude: anthropic.Anthropic, gpt: openai.OpenAI
) -> None:
    sim()
    message = claude.messages.create(model="m", max_tokens=16, messages=[user("hi")])
    completion = gpt.chat.completions.create(model="m", messages=[user("hi")])
    assert message._request_id.startswith("req_sim_")
    assert completion._request_id.startswith("req_sim_")


def test_set_script_swaps_behaviour_at_runtime(sim: Load, ask) -> None:
    server = sim()
    assert ask("anthropic", "m", [user(SINGLE.prompt)]).text == "Paris"
    server.set_script(SimScript({"m": SimBehaviour(quality=0.0)}, [rule_for(SINGLE)]))
    assert ask("anthropic", "m", [user(SINGLE.prompt)]).text == "Lyon"


def test_latency_and_streaming_together(sim: Load, ask) -> None:
    sim(m=SimBehaviour(latency_ms=4))
    assert ask("anthropic", "m", [user(UNICODE.prompt)], stream=True).text == UNICODE.sim.answer
    assert ask("openai", "m", [user(UNICODE.prompt)], stream=True).text == UNICODE.sim.answer


# --------------------------------------------------------------------------- scripts and lifecycle


def test_script_from_project_uses_only_sim_models() -> None:
    models = [
        ModelConfig(id="real", provider="anthropic", model="claude-x"),
        ModelConfig(id="sim-a", provider="sim", model="sim-a", sim=SimBehaviour(quality=0.3)),
        ModelConfig(id="sim-b", provider="sim", model="sim-b", protocol="openai"),
    ]
    script = script_from_project(
        models, [*CANARIES, SINGLE.model_copy(update={"id": "nosim", "sim": None, "prompt": "unscripted"})]
    )
    assert script.behaviours == {"sim-a": SimBehaviour(quality=0.3), "sim-b": SimBehaviour()}
    assert [(r.canary_id, r.kind, r.key) for r in script.rules] == [
        ("capital", "single", SINGLE.prompt),
        ("unicode", "single", UNICODE.prompt),
        ("remember", "multi_turn", MULTI.turns[0].user),
        ("weather", "tool_call", TOOL.prompt),
    ]
    assert script.default_behaviour is None


def test_script_from_project_rejects_conflicting_wire_names() -> None:
    models = [
        ModelConfig(id="one", provider="sim", model="same", sim=SimBehaviour(quality=0.1)),
        ModelConfig(id="two", provider="sim", model="same", sim=SimBehaviour(quality=0.9)),
    ]
    with pytest.raises(SetupError, match="'one' and 'two'"):
        script_from_project(models, [])


def test_server_binds_loopback_and_stops_cleanly() -> None:
    with SimServer(SimScript({"m": SimBehaviour()})) as running:
        assert running.url.startswith("http://127.0.0.1:") and running.port > 0
        assert running.openai_base_url == running.url + "/v1"
        port = running.port
        body = {"model": "m", "max_tokens": 8, "messages": [user("hi")]}
        assert (
            httpx.post(running.url + "/v1/messages", json=body, headers=headers("2025-01-01")).status_code
            == 200
        )
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"http://127.0.0.1:{port}/v1/messages", json=body)


def test_busy_port_is_a_setup_error(server: SimServer) -> None:
    with pytest.raises(SetupError, match="cannot listen"):
        SimServer(SimScript({}), port=server.port).start()


# --------------------------------------------------------------------------- odd_text (canary.sim.oddtext)

ODD_WIRE = {
    "surrogate": b"\\ud800",  # a JSON escape for a lone surrogate
    "nul": b"\\u0000",
    "invalid_utf8": b"\xff\xfe",  # raw, not UTF-8
    "bidi": "\u202e\u2066".encode(),
    "tool_name": b"\\ud800",
}


def _raw_post(server: SimServer, wire: str, stream: bool, *, tools: bool) -> httpx.Response:
    if wire == "anthropic":
        url, body = server.anthropic_base_url + "/v1/messages", {"max_tokens": 200}
        if tools:
            body["tools"] = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    else:
        url, body = server.openai_base_url + "/chat/completions", {}
        if tools:
            body["tools"] = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    prompt = TOOL.prompt if tools else SINGLE.prompt
    body.update(model="m", messages=[user(prompt)], stream=stream)
    return httpx.post(url, json=body, timeout=10)


@pytest.mark.parametrize(("wire", "stream"), MODES, ids=MODE_IDS)
@pytest.mark.parametrize("variant", list(ODD_WIRE))
def test_odd_text_fault_sends_the_bytes_on_the_wire(sim: Load, wire: str, stream: bool, variant: str) -> None:
    server = sim(m=SimBehaviour(faults=[SimFault(kind="odd_text", variant=variant)]))
    for tools in (False, True):
        response = _raw_post(server, wire, stream, tools=tools)
        assert response.status_code == 200
        raw = response.content
        assert b"Paris" in raw or (stream and tools)  # the scripted answer is kept (streamed calls are split)
        # in the answer or the tool arguments, and in the served model name
        assert raw.count(ODD_WIRE[variant]) >= 2, raw[:400]
        if variant == "tool_name" and tools:
            assert b'get_weather\\ud800"' in raw
        request_id = response.headers["request-id" if wire == "anthropic" else "x-request-id"]
        assert request_id.endswith("\u202e")  # a hostile response header too
    assert server.stats() == {"m": 2}


def test_odd_text_huge_usage_claims_more_tokens_than_any_column_holds(sim: Load, ask) -> None:
    sim(m=SimBehaviour(faults=[SimFault(kind="odd_text", variant="huge_usage")]))
    for wire, stream in MODES:
        answer = ask(wire, "m", [user(SINGLE.prompt)], stream=stream)
        assert answer.text == "Paris" and answer.output_tokens == 10**20, (wire, stream)
