"""Issue 8 parts 1-3 and 5 end to end: the real CLI, the simulator over HTTP through the real
SDKs' transport, a real SQLite file. A 200 that is not the vendor's shape is `unavailable`
(bad_response) and retried; a truncated or refused answer is a `fail` with its reason;
`x-should-retry` and `retry-after: 0` are handled as the SDKs would; huge replies are kept to
a documented prefix. Asserted by the simulator's request counts, stored rows and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from canary.config.models import SimBehaviour, SimFault
from canary.providers.body import EXCERPT_CHARS, MAX_REPLY_CHARS
from canary.sim import SimServer
from canary.store import Store
from tests.cli_helpers import config_with, remote_model, run_cli, script_the_sim
from tests.projects import SINGLE, write_project

KEY = "sk-canary-bad-9d8e7f6a5b"
REPO = Path(__file__).resolve().parent.parent
WIRES = [("anthropic", True), ("anthropic", False), ("openai", True), ("openai", False)]
WIRE_IDS = ["anthropic-stream", "anthropic", "openai-stream", "openai"]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CANARY_TEST_KEY", KEY)
    return KEY


def _project(
    tmp_path: Path,
    server: SimServer,
    fault: SimFault | None,
    *,
    wire: str,
    stream: bool,
    samples: int = 1,
    attempts: int = 3,
    canary: str = SINGLE,
    concurrency: int = 8,
    timeout_s: int = 5,
) -> Path:
    name = f"m-{wire}-{'s' if stream else 'w'}"
    config = config_with(
        remote_model("m", name, server, wire=wire),
        samples=samples,
        attempts=attempts,
        stream=stream,
        concurrency=concurrency,
    )
    path = write_project(
        tmp_path, config.replace("timeout_s: 5\n", f"timeout_s: {timeout_s}\n"), {"single.yaml": canary}
    )
    script_the_sim(server, path, {name: SimBehaviour(faults=[fault] if fault else [])})
    return path


def _rows(tmp_path: Path):
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        return store.samples()


def _run(capsys, path: Path):
    return run_cli(capsys, "run", "--config", str(path), "--no-check")


# --------------------------------------------------------------------------- part 1: bad 200s

BAD_200 = [
    SimFault(kind="html"),
    SimFault(kind="malformed", body="array"),
    SimFault(kind="malformed", body="null"),
    SimFault(kind="malformed", body="missing_fields"),
    SimFault(kind="malformed", body="undecodable"),
    SimFault(kind="no_stop"),
]
BAD_IDS = ["html", "array", "null", "missing-fields", "undecodable", "no-closing-event"]


@pytest.mark.parametrize("wire,stream", WIRES, ids=WIRE_IDS)
@pytest.mark.parametrize("fault", BAD_200, ids=BAD_IDS)
def test_a_200_not_of_the_vendors_shape_is_unavailable_and_retried(
    tmp_path, capsys, server, key, fault, wire, stream
):
    path = _project(tmp_path, server, fault, wire=wire, stream=stream, attempts=2)
    result = _run(capsys, path)
    assert result.code == 0, result.err  # a result, not an alert and not a crash
    assert "Traceback" not in result.err
    assert sum(server.stats().values()) == 3  # the first request and two retries
    [row] = _rows(tmp_path)
    assert row.outcome == "unavailable" and row.error_code == "bad_response", (row.reason, row.error_message)
    assert [(a.status, a.code) for a in row.attempts] == [(200, "bad_response")] * 3
    for attempt in row.attempts:
        assert attempt.excerpt is not None and len(attempt.excerpt) <= EXCERPT_CHARS
        assert KEY not in attempt.excerpt and KEY not in attempt.message
    if fault.kind == "html":
        assert "502 Bad Gateway" in row.attempts[0].excerpt and "[redacted]" in row.attempts[0].excerpt


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
def test_a_bad_200_once_then_a_good_answer_passes(tmp_path, capsys, server, key, wire):
    path = _project(tmp_path, server, SimFault(kind="html", times=1), wire=wire, stream=True)
    assert _run(capsys, path).code == 0
    [row] = _rows(tmp_path)
    assert row.outcome == "pass" and [a.code for a in row.attempts] == ["bad_response", "ok"]
    assert sum(server.stats().values()) == 2


def test_results_json_shows_the_excerpt(tmp_path, capsys, server, key):
    path = _project(
        tmp_path, server, SimFault(kind="malformed", body="null"), wire="anthropic", stream=False, attempts=0
    )
    assert _run(capsys, path).code == 0
    shown = run_cli(capsys, "results", "--config", str(path), "--json")
    [sample] = json.loads(shown.out)
    assert sample["outcome"] == "unavailable" and sample["attempts"][0]["excerpt"] == "null"


@pytest.mark.parametrize("wire,stream", WIRES, ids=WIRE_IDS)
def test_empty_content_stays_a_quality_fail(tmp_path, capsys, server, key, wire, stream):
    path = _project(tmp_path, server, SimFault(kind="empty"), wire=wire, stream=stream)
    assert _run(capsys, path).code == 0
    assert sum(server.stats().values()) == 1
    [row] = _rows(tmp_path)
    assert row.outcome == "fail" and row.reason.startswith("empty_output")


# --------------------------------------------------------------------------- part 2: truncated, refused

ALLOWING = SINGLE.replace("scorers:", "allow_truncated: true\nscorers:")


@pytest.mark.parametrize("wire,stream", WIRES, ids=WIRE_IDS)
def test_a_truncated_answer_fails_even_when_the_scorer_matches(tmp_path, capsys, server, key, wire, stream):
    path = _project(tmp_path, server, SimFault(kind="truncated"), wire=wire, stream=stream)
    assert _run(capsys, path).code == 0
    assert sum(server.stats().values()) == 1  # a quality result: not retried
    [row] = _rows(tmp_path)
    assert row.outcome == "fail" and row.reason.startswith("truncated"), row.reason
    assert row.stop_reason == ("max_tokens" if wire == "anthropic" else "length")
    assert [s.passed for s in row.turns[0].scores] == [True]  # "Paris" was there
    assert row.turns[0].failure == "truncated"


def test_allow_truncated_lets_the_scorers_decide(tmp_path, capsys, server, key):
    path = _project(tmp_path, server, SimFault(kind="truncated"), wire="openai", stream=True, canary=ALLOWING)
    assert _run(capsys, path).code == 0
    [row] = _rows(tmp_path)
    assert row.outcome == "pass" and row.stop_reason == "length"


def test_allow_truncated_changes_the_hash_only_when_set():
    from canary.config.models import SingleCanary

    base = {
        "id": "capital",
        "prompt": "What is the capital of France?",
        "scorers": [{"contains": {"any": ["Paris"]}}],
    }
    assert SingleCanary(**base).content_hash() == "3907d0cadc6f6740"  # as before the field existed
    assert SingleCanary(**base, allow_truncated=False).content_hash() == "3907d0cadc6f6740"
    assert SingleCanary(**base, allow_truncated=True).content_hash() != "3907d0cadc6f6740"


@pytest.mark.parametrize("wire,stream", WIRES, ids=WIRE_IDS)
@pytest.mark.parametrize("kind", ["refusal", "content_filter"])
def test_a_refusal_fails_with_its_text_stored(tmp_path, capsys, server, key, wire, stream, kind):
    path = _project(tmp_path, server, SimFault(kind=kind), wire=wire, stream=stream)
    assert _run(capsys, path).code == 0
    assert sum(server.stats().values()) == 1
    [row] = _rows(tmp_path)
    assert row.outcome == "fail" and row.reason.startswith("refusal"), row.reason
    assert row.turns[0].refusal == "I can't help with that request."
    assert "I can't help" in row.reason


# --------------------------------------------------------------------------- part 3: x-should-retry, jitter


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
def test_should_retry_false_on_a_503_makes_one_request(tmp_path, capsys, server, key, wire):
    path = _project(tmp_path, server, SimFault(status=503, should_retry=False), wire=wire, stream=True)
    assert _run(capsys, path).code == 0
    assert sum(server.stats().values()) == 1
    [row] = _rows(tmp_path)
    assert row.outcome == "unavailable" and row.attempts[0].status == 503


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
def test_should_retry_true_on_a_400_is_retried_by_the_policy(tmp_path, capsys, server, key, wire):
    path = _project(
        tmp_path, server, SimFault(status=400, times=2, should_retry=True), wire=wire, stream=False
    )
    assert _run(capsys, path).code == 0
    assert sum(server.stats().values()) == 3
    [row] = _rows(tmp_path)
    assert row.outcome == "pass" and [a.status for a in row.attempts] == [400, 400, 200]


def test_a_400_without_the_header_is_not_retried(tmp_path, capsys, server, key):
    path = _project(tmp_path, server, SimFault(status=400, times=2), wire="openai", stream=False)
    assert _run(capsys, path).code == 69
    assert sum(server.stats().values()) == 1


def test_retry_after_zero_at_concurrency_100_gets_every_sample_through(tmp_path, capsys, server, key):
    """Every 10th request is a 529 with `retry-after: 0`: jittered retries spread out instead of
    landing together on the next failing slot, so all 400 samples pass. Without the jitter the
    retries come back in lock-step and some samples hit a failing slot five times (this test
    failed 3 of 3 runs with the old exact-retry-after delay). With it a retry lands on a failing
    slot about 1 time in 10 (observed: ~40 samples retried once, ~3 twice, rarely one three
    times), so 5 straight failures - unavailable - is ~1e-5 per retried sample."""
    fault = SimFault(status=529, every=10, retry_after_s=0)
    path = write_project(
        tmp_path,
        textwrap.dedent("""\
            store: sqlite:///canary.db
            defaults:
              samples: 400
              concurrency: 100
              global_concurrency: 100
              timeout_s: 60
              stream: false
              retry: {attempts: 4, backoff_s: [0.05, 0.1, 0.2], jitter: 0.5, max_retry_after_s: 1}
            models:
            """)
        + textwrap.indent(remote_model("m", "m-every10", server), "  "),
        {"single.yaml": SINGLE},
    )
    script_the_sim(server, path, {"m-every10": SimBehaviour(faults=[fault])})
    assert _run(capsys, path).code == 0
    rows = _rows(tmp_path)
    assert len(rows) == 400
    assert {r.outcome for r in rows} == {"pass"}
    failed = sum(a.status == 529 for r in rows for a in r.attempts)
    total = server.stats()["m-every10"]
    assert total == 400 + failed and failed == total // 10


# --------------------------------------------------------------------------- part 5: huge replies


@pytest.mark.parametrize("wire,stream", WIRES, ids=WIRE_IDS)
def test_a_20_mb_answer_is_kept_to_the_documented_prefix(tmp_path, capsys, server, key, wire, stream):
    size = 20_000_000
    path = _project(tmp_path, server, SimFault(kind="huge", size=size), wire=wire, stream=stream)
    assert _run(capsys, path).code == 0
    [row] = _rows(tmp_path)
    turn = row.turns[0]
    assert turn.cut and turn.reply_chars == size
    assert len(turn.reply) == MAX_REPLY_CHARS
    assert turn.reply.startswith("The quick brown fox")
    assert row.outcome == "fail" and turn.scores  # judged on the prefix (no "Paris" in it)
    db = tmp_path / "canary.db"
    assert db.stat().st_size < 20 * MAX_REPLY_CHARS  # not 20 MB x 4 bytes


def test_four_100_mb_answers_at_once_stay_within_bounded_memory(tmp_path, server, key):
    """Four concurrent 100 MB replies per wire, streamed and whole, in a `canary run` process of
    its own; its peak RSS (ru_maxrss of the child) stays far below one reply's size x 4."""
    size = 100_000_000
    for wire, stream in [("anthropic", True), ("openai", False)]:
        root = tmp_path / f"{wire}-{stream}"
        path = _project(
            root,
            server,
            SimFault(kind="huge", size=size),
            wire=wire,
            stream=stream,
            samples=4,
            concurrency=4,
            timeout_s=600,
        )
        code = (
            "import resource, sys\n"
            "from canary.cli import main\n"
            "try:\n"
            f"    main(['run', '--config', {str(path)!r}, '--no-check', '--quiet'])\n"
            "except SystemExit as exc:\n"
            "    code = exc.code\n"
            "else:\n"
            "    code = 0\n"
            "print('RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)\n"
            "sys.exit(code)\n"
        )
        env = {**os.environ, "CANARY_TEST_KEY": KEY, "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr
        rss_mb = int(done.stdout.split("RSS_KB")[1].split()[0]) / 1024
        assert rss_mb < 400, rss_mb  # four whole replies would be 400 MB of bytes before any parsing
        rows = _rows(root)
        assert len(rows) == 4
        print(wire, stream, f"peak RSS {rss_mb:.0f} MB", [(r.outcome, r.reason) for r in rows])
        assert all(r.turns[0].cut and r.turns[0].reply_chars == size for r in rows)
        assert server.stats() == {f"m-{wire}-{'s' if stream else 'w'}": 4}


# --------------------------------------------------------------------------- containment


def test_a_canary_bug_in_one_probe_is_that_samples_harness_error(tmp_path, capsys, server, key, monkeypatch):
    """An exception canary does not expect (here: its own reply reader failing on the 2nd reply)
    ends that sample as `harness_error` with the reason; every other sample is still run and stored."""
    from canary.providers import openai_api

    real = openai_api.completion_of
    calls = []

    def flaky(body):
        calls.append(1)
        if len(calls) == 2:
            raise KeyError("choices")
        return real(body)

    monkeypatch.setattr(openai_api, "completion_of", flaky)
    path = _project(tmp_path, server, None, wire="openai", stream=False, samples=4, concurrency=1)
    result = _run(capsys, path)
    assert result.code == 70 and "Traceback" not in result.err
    rows = _rows(tmp_path)
    assert sorted(r.outcome for r in rows) == ["harness_error", "pass", "pass", "pass"]
    [bad] = [r for r in rows if r.outcome == "harness_error"]
    assert bad.error_code == "harness" and "KeyError" in bad.reason
    assert sum(server.stats().values()) == 4  # a bug is not retried


# --------------------------------------------------------------------------- error bodies


@pytest.mark.parametrize("protocol", ["anthropic", "openai"])
def test_a_100_mb_error_body_is_not_read_whole(protocol):
    """A 503 whose body goes on for 100 MB: the SDKs would read it all before raising; canary
    reads the first 64 KB (MAX_ERROR_BODY), classifies the status and hangs up, so the server
    cannot write more than its socket buffers hold."""
    import asyncio

    from aiohttp import web

    from canary.config.models import ModelConfig, ResolvedModel, RetryPolicy
    from canary.providers import build_provider
    from canary.records import ChatRequest, Message, ProviderError

    written = []
    chunk = b"x" * 65536

    async def endless_error(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=503, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            for _ in range(1600):
                await response.write(chunk)
                written.append(len(chunk))
        except (ConnectionError, RuntimeError):
            pass
        return response

    async def go() -> ProviderError:
        app = web.Application()
        app.router.add_post("/v1/messages", endless_error)
        app.router.add_post("/v1/chat/completions", endless_error)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}" + ("/v1" if protocol == "openai" else "")
        model = ResolvedModel(
            config=ModelConfig(id="x", provider="sim", protocol=protocol, model="x"),
            samples=1,
            concurrency=1,
            timeout_s=60,
            stream=False,
            params={"max_tokens": 8},
            retry=RetryPolicy(),
        )
        provider = build_provider(model, api_key=KEY, base_url=url)
        try:
            await provider.complete(ChatRequest(None, (Message("user", "hi"),)))
        except ProviderError as exc:
            return exc
        finally:
            await provider.aclose()
            await runner.cleanup()
        raise AssertionError("no error raised")

    error = asyncio.run(go())
    assert error.status == 503 and error.retryable
    assert sum(written) < 50_000_000  # the client hung up long before the 100 MB were out
