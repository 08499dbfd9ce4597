"""Providers through the real anthropic/openai SDKs against the real simulator over loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import subprocess
import sys
import uuid
from typing import Any

import pytest

from canary.config.models import (
    ModelConfig,
    ResolvedModel,
    RetryPolicy,
    SimAnswers,
    SimBehaviour,
    SimCall,
    SimFault,
)
from canary.errors import SetupError
from canary.providers import build_provider
from canary.providers.errors import from_status, parse_retry_after, redact
from canary.records import ChatRequest, ChatResponse, Message, ProviderError, ToolSpec
from canary.sim import SimRule, SimScript, SimServer

SYSTEM = "Answer briefly."
QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris, on the Seine."
WEATHER = "What is the weather in Paris?"
FINAL = "It is sunny in Paris today."
TOOLS = (
    ToolSpec(
        "get_weather",
        "Current weather for a city",
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    ),
)
RULES = [
    SimRule(QUESTION, "single", SimAnswers(answer=ANSWER)),
    SimRule(
        WEATHER,
        "tool_call",
        SimAnswers(answer=FINAL, call=SimCall(name="get_weather", arguments={"city": "Paris"})),
    ),
]
RETRYABLE_STATUSES = (408, 409, 429, 500, 502, 503, 504, 529)
FATAL_STATUSES = (400, 401, 403, 404, 413, 422)
BEHAVIOURS: dict[str, SimBehaviour] = {
    "sim-ok": SimBehaviour(),
    "sim-served": SimBehaviour(served_model="sim-served-2025-06-01", fingerprint="fp_canary"),
    "sim-empty": SimBehaviour(faults=[SimFault(kind="empty")]),
    "sim-huge": SimBehaviour(faults=[SimFault(kind="huge")]),
    "sim-bad-args": SimBehaviour(faults=[SimFault(kind="bad_tool_args")]),
    "sim-mid": SimBehaviour(faults=[SimFault(kind="mid_stream")]),
    "sim-timeout": SimBehaviour(faults=[SimFault(kind="timeout")]),
    "sim-quota": SimBehaviour(faults=[SimFault(kind="quota")]),
    **{f"sim-{s}": SimBehaviour(faults=[SimFault(status=s, retry_after_s=2)]) for s in RETRYABLE_STATUSES},
    **{f"sim-{s}": SimBehaviour(faults=[SimFault(status=s)]) for s in FATAL_STATUSES},
}
WIRES = [("anthropic", False), ("anthropic", True), ("openai", False), ("openai", True)]
WIRE_IDS = ["anthropic", "anthropic-stream", "openai", "openai-stream"]


@pytest.fixture(scope="module")
def server():
    with SimServer(SimScript(behaviours=BEHAVIOURS, rules=RULES)) as sim:
        yield sim


@pytest.fixture(autouse=True)
def _fresh_counters(server: SimServer) -> None:
    server.reset()


@pytest.fixture(params=WIRES, ids=WIRE_IDS)
def wire(request: pytest.FixtureRequest) -> tuple[str, bool]:
    return request.param


def resolved(
    name: str, protocol: str, stream: bool, *, params: dict[str, Any] | None = None, timeout_s: float = 10.0
) -> ResolvedModel:
    return ResolvedModel(
        config=ModelConfig(id=f"test-{name}", provider="sim", protocol=protocol, model=name),
        samples=1,
        concurrency=4,
        timeout_s=timeout_s,
        stream=stream,
        params={"max_tokens": 256} if params is None else params,
        retry=RetryPolicy(),
    )


def ask(text: str = QUESTION, *, tools: bool = False) -> ChatRequest:
    return ChatRequest(system=SYSTEM, messages=(Message("user", text),), tools=TOOLS if tools else ())


class Wiretap:
    """Keeps the JSON body and headers of every request the SDK's HTTP client really sends."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    async def __call__(self, request: Any) -> None:
        self.bodies.append(json.loads(await request.aread()))
        self.headers.append({k.lower(): v for k, v in request.headers.items()})


def call(
    server: SimServer,
    name: str,
    wire: tuple[str, bool],
    request: ChatRequest | None = None,
    *,
    key: str | None = "sk-test-not-a-real-key",
    params: dict[str, Any] | None = None,
    timeout_s: float = 10.0,
    tap: Wiretap | None = None,
    base_url: str | None = None,
) -> ChatResponse:
    protocol, stream = wire
    model = resolved(name, protocol, stream, params=params, timeout_s=timeout_s)
    if base_url is None:
        base_url = server.anthropic_base_url if protocol == "anthropic" else server.openai_base_url

    async def go() -> ChatResponse:
        provider = build_provider(
            model, api_key=key, base_url=base_url, extra_headers={"x-canary-sim-day": "2025-06-01"}
        )
        if tap is not None:
            provider._client._client.event_hooks["request"].append(tap)  # observe the real wire
        try:
            return await provider.complete(request or ask())
        finally:
            await provider.aclose()

    return asyncio.run(go())


def failure(*args: Any, **kwargs: Any) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        call(*args, **kwargs)
    return info.value


# --------------------------------------------------------------------------- answers


def test_text_answer_and_usage(server: SimServer, wire: tuple[str, bool]) -> None:
    response = call(server, "sim-ok", wire)
    assert response.text == ANSWER
    assert response.tool_calls == ()
    assert response.stop_reason == ("end_turn" if wire[0] == "anthropic" else "stop")
    assert response.served_model == "sim-ok"
    # The simulator counts ceil(chars / 4): system + question in, the answer out.
    assert response.input_tokens == math.ceil((len(SYSTEM) + len(QUESTION)) / 4)
    assert response.output_tokens == math.ceil(len(ANSWER) / 4)
    assert response.request_id and response.request_id.startswith("req_sim_")
    assert response.latency_s > 0
    assert server.stats() == {"sim-ok": 1}


def test_tool_call_round_trip(server: SimServer, wire: tuple[str, bool]) -> None:
    first = call(server, "sim-ok", wire, ask(WEATHER, tools=True))
    assert first.stop_reason == ("tool_use" if wire[0] == "anthropic" else "tool_calls")
    [tool_call] = first.tool_calls
    assert tool_call.name == "get_weather"
    assert tool_call.arguments == {"city": "Paris"}
    assert json.loads(tool_call.raw_arguments) == {"city": "Paris"}
    assert tool_call.id

    follow_up = ChatRequest(
        system=SYSTEM,
        messages=(
            Message("user", WEATHER),
            Message("assistant", first.text, tool_calls=first.tool_calls),
            Message(
                "tool", '{"sky": "clear", "celsius": 24}', tool_call_id=tool_call.id, tool_name="get_weather"
            ),
        ),
        tools=TOOLS,
    )
    tap = Wiretap()
    final = call(server, "sim-ok", wire, follow_up, tap=tap)
    assert final.text == FINAL
    assert final.tool_calls == ()
    sent = tap.bodies[0]["messages"]
    if wire[0] == "anthropic":
        assert sent[1]["content"][-1] == {
            "type": "tool_use",
            "id": tool_call.id,
            "name": "get_weather",
            "input": {"city": "Paris"},
        }
        assert sent[2]["content"][0]["type"] == "tool_result"
        assert sent[2]["content"][0]["tool_use_id"] == tool_call.id
    else:
        assert sent[0] == {"role": "system", "content": SYSTEM}
        assert sent[2]["tool_calls"][0]["id"] == tool_call.id
        assert sent[3] == {
            "role": "tool",
            "tool_call_id": tool_call.id,
            "content": '{"sky": "clear", "celsius": 24}',
        }


def test_served_model_and_fingerprint(server: SimServer, wire: tuple[str, bool]) -> None:
    response = call(server, "sim-served", wire)
    assert response.served_model == "sim-served-2025-06-01"
    assert response.fingerprint == ("fp_canary" if wire[0] == "openai" else None)


def test_params_reach_the_api(server: SimServer, wire: tuple[str, bool]) -> None:
    protocol, stream = wire
    extra = {"thinking": {"type": "disabled"}} if protocol == "anthropic" else {"reasoning_effort": "low"}
    params = {
        "max_tokens": 3,
        "temperature": 0.25,
        "top_p": 0.5,
        "stop": ["STOP"],
        "service_tier": "auto",
        **extra,
    }
    tap = Wiretap()
    response = call(server, "sim-ok", wire, params=params, tap=tap)
    [body] = tap.bodies
    assert body["max_tokens"] == 3
    assert body["temperature"] == 0.25
    assert body["top_p"] == 0.5
    assert body["service_tier"] == "auto"
    for key, value in extra.items():
        assert body[key] == value
    if protocol == "anthropic":
        assert body["stop_sequences"] == ["STOP"]
        assert "stop" not in body
    else:
        assert body["stop"] == ["STOP"]
    assert body.get("stream", False) is stream
    if protocol == "openai" and stream:
        assert body["stream_options"] == {"include_usage": True}
    assert tap.headers[0]["x-canary-sim-day"] == "2025-06-01"
    # The server honoured max_tokens: the answer was cut.
    assert response.stop_reason == ("max_tokens" if protocol == "anthropic" else "length")
    assert response.output_tokens == 3
    assert len(response.text) < len(ANSWER)


def test_max_completion_tokens_replaces_max_tokens(server: SimServer) -> None:
    tap = Wiretap()
    response = call(
        server, "sim-ok", ("openai", False), params={"max_tokens": 256, "max_completion_tokens": 3}, tap=tap
    )
    assert tap.bodies[0]["max_completion_tokens"] == 3
    assert "max_tokens" not in tap.bodies[0]
    assert response.stop_reason == "length"


def test_params_canary_sets_itself_are_refused() -> None:
    with pytest.raises(SetupError, match="stream"):
        build_provider(resolved("sim-ok", "openai", False, params={"stream": True}), api_key=None)


def test_empty_answer_is_returned_not_raised(server: SimServer, wire: tuple[str, bool]) -> None:
    response = call(server, "sim-empty", wire)
    assert response.text == ""
    assert response.tool_calls == ()


def test_huge_answer(server: SimServer, wire: tuple[str, bool]) -> None:
    response = call(server, "sim-huge", wire)
    assert len(response.text) == 1_000_000
    assert response.text.startswith("The quick brown fox")


def test_invalid_tool_arguments_are_kept_raw(server: SimServer, wire: tuple[str, bool]) -> None:
    response = call(server, "sim-bad-args", wire, ask(WEATHER, tools=True))
    [tool_call] = response.tool_calls
    assert tool_call.name == "get_weather"
    assert tool_call.arguments is None
    assert tool_call.raw_arguments == "{'city': 'Paris'}"


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("status", RETRYABLE_STATUSES + FATAL_STATUSES)
def test_status_classification(server: SimServer, wire: tuple[str, bool], status: int) -> None:
    error = failure(server, f"sim-{status}", wire)
    assert error.status == status
    assert error.retryable is (status in RETRYABLE_STATUSES)
    assert error.retry_after_s == (2.0 if status in RETRYABLE_STATUSES else None)
    assert error.message.startswith(f"HTTP {status} ")
    assert "\n" not in error.message
    assert error.code and " " not in error.code
    assert server.stats() == {f"sim-{status}": 1}


def test_vendor_error_types_become_codes(server: SimServer) -> None:
    assert failure(server, "sim-401", ("anthropic", False)).code == "authentication_error"
    overloaded = failure(server, "sim-529", ("anthropic", True))
    assert overloaded.code == "overloaded_error"
    assert overloaded.message == "HTTP 529 overloaded_error: Overloaded"
    assert failure(server, "sim-429", ("anthropic", False)).code == "rate_limit_error"


def test_quota_is_not_retryable(server: SimServer, wire: tuple[str, bool]) -> None:
    error = failure(server, "sim-quota", wire)
    assert (error.status, error.code, error.retryable) == (429, "quota", False)
    assert error.retry_after_s is None


def test_timeout(server: SimServer, wire: tuple[str, bool]) -> None:
    error = failure(server, "sim-timeout", wire, timeout_s=0.05)
    assert (error.code, error.retryable, error.status) == ("timeout", True, None)


def test_mid_stream_failure(server: SimServer, wire: tuple[str, bool]) -> None:
    error = failure(server, "sim-mid", wire, ask())
    assert (error.code, error.retryable, error.status) == ("mid_stream", True, 200)
    protocol, stream = wire
    if stream:  # the error event's type survives into the message
        assert ("overloaded_error" if protocol == "anthropic" else "server_error") in error.message
    else:  # non-streaming: 200 headers, half the body, then a dropped connection
        assert "connection" in error.message


def test_connection_refused(wire: tuple[str, bool]) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}" + ("/v1" if wire[0] == "openai" else "")
    error = failure(None, "sim-ok", wire, base_url=base)
    assert (error.code, error.retryable, error.status) == ("connection", True, None)


# --------------------------------------------------------------------------- secrets and credentials


def test_api_key_never_leaks(
    server: SimServer, wire: tuple[str, bool], caplog: pytest.LogCaptureFixture
) -> None:
    key = f"sk-canary-{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG)
    tap = Wiretap()
    call(server, "sim-ok", wire, key=key, tap=tap)
    assert tap.headers[0]["authorization"] == f"Bearer {key}"  # it was really sent
    errors = [failure(server, name, wire, key=key) for name in ("sim-401", "sim-529", "sim-quota", "sim-mid")]
    provider = build_provider(resolved("sim-ok", *wire), api_key=key, base_url=server.url)
    texts = [repr(provider), str(provider)]
    asyncio.run(provider.aclose())
    for error in errors:
        texts += [
            str(error),
            repr(error),
            error.message,
            error.code,
            repr(error.__cause__),
            repr(error.__context__),
        ]
    formatter = logging.Formatter()
    texts += [formatter.format(record) for record in caplog.records]
    assert caplog.records  # DEBUG logging really was on
    leaks = [text for text in texts if key in text]
    assert leaks == []


def test_error_messages_are_redacted() -> None:
    key = "sk-proj-Abc123Def456Ghi789"
    body = {"error": {"type": "invalid_request_error", "code": "invalid_api_key",
                      "message": f"Incorrect API key provided: {key[:8]}***********i789. Or {key}"}}  # fmt: skip
    error = from_status(401, body, {}, secrets=(key,))
    assert key not in error.message and "sk-proj-" not in error.message
    assert error.message.startswith("HTTP 401 invalid_request_error: Incorrect API key provided: [redacted]")
    assert redact(f"token {key}!", (key,)) == "token [redacted]!"
    assert redact("Authorization: Bearer abc.def", ()) == "Authorization: [redacted]"


def test_environment_credentials_and_urls_are_ignored(
    server: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = "http://127.0.0.1:9"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-environment")
    monkeypatch.setenv("ANTHROPIC_PROFILE", "no-such-profile")  # the SDK raises if it tries to load it
    monkeypatch.setenv("ANTHROPIC_BASE_URL", dead)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-environment")
    monkeypatch.setenv("OPENAI_BASE_URL", dead)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-from-environment")
    for protocol, base in (("anthropic", server.anthropic_base_url), ("openai", server.openai_base_url)):
        model = resolved("sim-ok", protocol, False)
        model = model.model_copy(update={"config": model.config.model_copy(update={"base_url": base})})
        tap = Wiretap()

        async def go(model: ResolvedModel = model, tap: Wiretap = tap) -> ChatResponse:
            provider = build_provider(model, api_key=None)  # a keyless gateway
            provider._client._client.event_hooks["request"].append(tap)
            try:
                return await provider.complete(ask())
            finally:
                await provider.aclose()

        assert asyncio.run(go()).text == ANSWER  # the configured base_url won over the environment's
        assert tap.headers[0]["authorization"] == "Bearer unused"
        assert "openai-organization" not in tap.headers[0]


# --------------------------------------------------------------------------- helpers and start-up


def test_retry_after_parsing() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "0.25"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past
    assert 3500 < parse_retry_after({"retry-after": _http_date_in(3600)}) <= 3600
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def _http_date_in(seconds: int) -> str:
    import email.utils
    import time

    return email.utils.formatdate(time.time() + seconds, usegmt=True)


def test_sdks_are_imported_lazily() -> None:
    code = (
        "import sys, canary.providers, canary.retry, canary.providers.errors, canary.providers.sdk;"
        "bad = [m for m in ('anthropic', 'openai', 'httpx2') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
