"""Replies as gateways that translate the vendors' APIs really send them: fields the vendor
always sets may be missing, and a reply that is still plainly the vendor's shape is judged, not
retried as a bad body. A real loopback HTTP server plays the gateway; the real SDKs talk to it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from canary.store import Store
from tests.cli_helpers import config_with, run_cli
from tests.projects import write_project
from tests.receivers import HttpReceiver

CANARY = textwrap.dedent("""\
    id: capital
    prompt: What is the capital of France?
    scorers:
      - contains: Paris
    """)
JSON = {"Content-Type": "application/json"}
SSE = {"Content-Type": "text/event-stream"}


def _sse(*events: object) -> bytes:
    return b"".join(
        b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n" for e in events
    )


OPENAI_NO_FINISH = json.dumps(
    {
        "id": "c1",
        "object": "chat.completion",
        "model": "gw-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
    }
).encode()
OPENAI_STREAM_DONE_NO_FINISH = _sse(
    {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "gw-model",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Par"}}],
    },
    {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "gw-model",
        "choices": [{"index": 0, "delta": {"content": "is."}}],
    },
    b"[DONE]",
)
ANTHROPIC_NO_STOP_REASON = json.dumps(
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "gw-model",
        "content": [{"type": "text", "text": "Paris."}],
        "usage": {"input_tokens": 5, "output_tokens": 2},
    }
).encode()


@pytest.mark.parametrize(
    ("provider", "stream", "reply"),
    [
        ("openai_compatible", False, (200, OPENAI_NO_FINISH, JSON)),
        ("openai_compatible", True, (200, OPENAI_STREAM_DONE_NO_FINISH, SSE)),
        ("anthropic", False, (200, ANTHROPIC_NO_STOP_REASON, JSON)),
    ],
    ids=["openai-no-finish_reason", "openai-stream-done-without-finish_reason", "anthropic-no-stop_reason"],
)
def test_a_gateway_reply_missing_the_stop_field_is_still_judged(
    tmp_path: Path, capsys, monkeypatch, http_receiver: HttpReceiver, provider: str, stream: bool, reply
) -> None:
    monkeypatch.setenv("CANARY_TEST_KEY", "sk-gateway-test-1234")
    monkeypatch.chdir(tmp_path)
    base = http_receiver.url("/v1") if provider == "openai_compatible" else http_receiver.url("")
    model = f"- {{id: gw, provider: {provider}, model: gw-model, base_url: '{base}', api_key_env: CANARY_TEST_KEY}}\n"
    path = write_project(tmp_path, config_with(model, samples=2, stream=stream), {"capital.yaml": CANARY})
    http_receiver.always(reply)
    result = run_cli(capsys, "run", "--config", str(path), "--no-check", "--quiet")
    assert result.code == 0, result.err
    assert len(http_receiver.received()) == 2  # one request a sample: nothing retried
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        rows = store.samples()
    assert [(r.outcome, r.turns[0].reply) for r in rows] == [("pass", "Paris.")] * 2


def test_an_openai_stream_with_neither_finish_reason_nor_done_is_a_bad_response(
    tmp_path: Path, capsys, monkeypatch, http_receiver: HttpReceiver
) -> None:
    monkeypatch.setenv("CANARY_TEST_KEY", "sk-gateway-test-1234")
    monkeypatch.chdir(tmp_path)
    model = (
        f"- {{id: gw, provider: openai_compatible, model: gw-model, base_url: '{http_receiver.url('/v1')}', "
        "api_key_env: CANARY_TEST_KEY}\n"
    )
    path = write_project(tmp_path, config_with(model, samples=1, attempts=1), {"capital.yaml": CANARY})
    cut = OPENAI_STREAM_DONE_NO_FINISH.rsplit(b"data: [DONE]", 1)[0]
    http_receiver.always((200, cut, SSE))
    result = run_cli(capsys, "run", "--config", str(path), "--no-check", "--quiet")
    assert result.code == 0, result.err
    assert len(http_receiver.received()) == 2  # the first request and one retry
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        [row] = store.samples()
    assert row.outcome == "unavailable" and [a.code for a in row.attempts] == ["bad_response"] * 2
