"""Shared canaries and SDK helpers for tests that talk to the simulator through the real SDKs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from canary.config.models import (
    MultiTurnCanary,
    SimAnswers,
    SimCall,
    SimTurn,
    SingleCanary,
    ToolCallCanary,
    ToolDecl,
    Turn,
)

FAKE_KEY = "sk-test-sim"
DAY_HEADER = "x-canary-sim-day"

SINGLE = SingleCanary(
    id="capital",
    prompt="What is the capital of France? Answer in one word.",
    scorers=[{"contains": {"text": "Paris"}}],
    sim=SimAnswers(answer="Paris", wrong="Lyon"),
)
UNICODE = SingleCanary(
    id="unicode",
    prompt="Écris « bonjour » en japonais — 日本語で？",
    scorers=[{"contains": {"text": "こんにちは"}}],
    sim=SimAnswers(answer="こんにちは ✓ «bonjour» — naïve café 🙂"),
)
MULTI = MultiTurnCanary(
    kind="multi_turn",
    id="remember",
    turns=[Turn(user="Remember the number 42."), Turn(user="Add 8 to it."), Turn(user="Now halve it.")],
    scorers=[{"contains": {"text": "25"}}],
    sim=SimAnswers(
        turns=[SimTurn(answer="Noted: 42."), SimTurn(answer="50", wrong="48"), SimTurn(answer="25")]
    ),
)
WEATHER_TOOL = ToolDecl(
    name="get_weather",
    description="Current weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TOOL = ToolCallCanary(
    kind="tool_call",
    id="weather",
    prompt="What's the weather in Paris right now?",
    tools=[WEATHER_TOOL],
    tool_results={"get_weather": {"temp_c": 21, "sky": "clear"}},
    scorers=[{"tool_call": {"name": "get_weather"}}],
    sim=SimAnswers(
        answer="It is 21 °C and clear in Paris.",
        call=SimCall(name="get_weather", arguments={"city": "Paris"}),
        wrong_call=SimCall(name="get_weather", arguments={"city": "Lyon"}),
    ),
)
CANARIES = (SINGLE, UNICODE, MULTI, TOOL)

ANTHROPIC_TOOLS = [
    {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in TOOL.tools
]
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
    }
    for t in TOOL.tools
]


@dataclass
class Answer:
    """What one call returned, whichever SDK made it."""

    text: str
    calls: list[tuple[str, Any]] = field(default_factory=list)  # (name, parsed input or raw string)
    stop: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    fingerprint: str | None = None


def headers(day: str | None) -> dict[str, str]:
    return {DAY_HEADER: day} if day else {}


def ask_anthropic(
    client: Any,
    model: str,
    messages: list[dict[str, Any]],
    *,
    stream: bool = False,
    day: str | None = None,
    tools: bool = False,
    max_tokens: int = 512,
    **extra: Any,
) -> Answer:
    kwargs: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": messages,
        "extra_headers": headers(day),
        **extra,
    }
    if tools:
        kwargs["tools"] = ANTHROPIC_TOOLS
    if stream:
        with client.messages.stream(**kwargs) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**kwargs)
    text = "".join(b.text for b in message.content if b.type == "text")
    calls = [(b.name, b.input) for b in message.content if b.type == "tool_use"]
    return Answer(
        text,
        calls,
        message.stop_reason,
        message.model,
        message.usage.input_tokens,
        message.usage.output_tokens,
    )


def ask_openai(
    client: Any,
    model: str,
    messages: list[dict[str, Any]],
    *,
    stream: bool = False,
    day: str | None = None,
    tools: bool = False,
    **extra: Any,
) -> Answer:
    """Streams are accumulated by hand from the raw chunks, to check the chunk format itself."""
    kwargs: dict[str, Any] = {"model": model, "messages": messages, "extra_headers": headers(day), **extra}
    if tools:
        kwargs["tools"] = OPENAI_TOOLS
    if not stream:
        done = client.chat.completions.create(**kwargs)
        msg = done.choices[0].message
        calls = [(c.function.name, c.function.arguments) for c in msg.tool_calls or ()]
        return Answer(
            msg.content or "",
            calls,
            done.choices[0].finish_reason,
            done.model,
            done.usage.prompt_tokens,
            done.usage.completion_tokens,
            done.system_fingerprint,
        )
    text, names, args = "", {}, {}
    answer = Answer("")
    for chunk in client.chat.completions.create(
        stream=True, stream_options={"include_usage": True}, **kwargs
    ):
        answer.model, answer.fingerprint = chunk.model, chunk.system_fingerprint
        if chunk.usage is not None:
            answer.input_tokens, answer.output_tokens = (
                chunk.usage.prompt_tokens,
                chunk.usage.completion_tokens,
            )
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or ():
                if call.function and call.function.name:
                    names[call.index] = call.function.name
                args[call.index] = args.get(call.index, "") + (
                    (call.function and call.function.arguments) or ""
                )
            answer.stop = choice.finish_reason or answer.stop
    answer.text = text
    answer.calls = [(names[i], args[i]) for i in sorted(names)]
    return answer


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def anthropic_tool_round(call_id: str, result: Any) -> list[dict[str, Any]]:
    """The assistant's tool call and the user's tool result, in Anthropic's shape."""
    return [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": "Paris"}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call_id, "content": json.dumps(result)}],
        },
    ]


def openai_tool_round(call_id: str, result: Any) -> list[dict[str, Any]]:
    """The assistant's tool call and the tool message, in OpenAI's shape."""
    return [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)},
    ]
