"""canary's retry policy against the real simulator: requests are counted on the server side."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from canary.config.models import ModelConfig, ResolvedModel, RetryPolicy, SimAnswers, SimBehaviour, SimFault
from canary.providers import build_provider
from canary.records import ChatRequest, Message
from canary.retry import CallOutcome, call_with_retry, retry_delay
from canary.sim import SimRule, SimScript, SimServer

QUESTION = "Say OK."
RULES = [SimRule(QUESTION, "single", SimAnswers(answer="OK"))]
BEHAVIOURS = {
    "r-529x2": SimBehaviour(faults=[SimFault(status=529, times=2)]),
    "r-503": SimBehaviour(faults=[SimFault(status=503)]),
    "r-ra-short": SimBehaviour(faults=[SimFault(status=429, times=1, retry_after_s=0.25)]),
    "r-ra-long": SimBehaviour(faults=[SimFault(status=529, retry_after_s=30)]),
    "r-401": SimBehaviour(faults=[SimFault(status=401)]),
    "r-quota": SimBehaviour(faults=[SimFault(kind="quota")]),
    "r-mid": SimBehaviour(faults=[SimFault(kind="mid_stream", times=1)]),
}
# Millisecond backoff: 1 ms, 2 ms, then doubling (4 ms); +-50% jitter.
POLICY = RetryPolicy(attempts=3, backoff_s=[0.001, 0.002], jitter=0.5, max_retry_after_s=1.0)


@pytest.fixture(scope="module")
def server():
    with SimServer(SimScript(behaviours=BEHAVIOURS, rules=RULES)) as sim:
        yield sim


@pytest.fixture(autouse=True)
def _fresh_counters(server: SimServer) -> None:
    server.reset()


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def run(
    server: SimServer,
    name: str,
    *,
    protocol: str = "anthropic",
    stream: bool = False,
    policy: RetryPolicy = POLICY,
    sleep: RecordingSleep | None = None,
    rand: Callable[[], float] | None = None,
    turn: int = 1,
) -> CallOutcome:
    model = ResolvedModel(
        config=ModelConfig(id=f"test-{name}", provider="sim", protocol=protocol, model=name),
        samples=1,
        concurrency=2,
        timeout_s=10.0,
        stream=stream,
        params={"max_tokens": 64},
        retry=policy,
    )
    base_url = server.anthropic_base_url if protocol == "anthropic" else server.openai_base_url
    request = ChatRequest(system=None, messages=(Message("user", QUESTION),))
    extra = {} if rand is None else {"rand": rand}

    async def go() -> CallOutcome:
        provider = build_provider(model, api_key="sk-test", base_url=base_url)
        try:
            return await call_with_retry(
                provider, request, policy, turn=turn, sleep=sleep or RecordingSleep(), **extra
            )
        finally:
            await provider.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("protocol", ["anthropic", "openai"])
def test_two_overloads_then_success(server: SimServer, protocol: str) -> None:
    sleep = RecordingSleep()
    outcome = run(server, "r-529x2", protocol=protocol, sleep=sleep, turn=2)
    assert outcome.response is not None and outcome.response.text == "OK"
    assert outcome.error is None
    assert server.stats() == {"r-529x2": 3}
    assert [a.number for a in outcome.attempts] == [1, 2, 3]
    assert [a.status for a in outcome.attempts] == [529, 529, 200]
    assert outcome.attempts[-1].code == "ok"
    assert all(a.code != "ok" and a.message.startswith("HTTP 529") for a in outcome.attempts[:2])
    assert {a.turn for a in outcome.attempts} == {2}
    # Within +-50% of 1 ms and 2 ms.
    assert len(sleep.delays) == 2
    assert 0.0005 <= sleep.delays[0] <= 0.0015
    assert 0.001 <= sleep.delays[1] <= 0.003


def test_jitter_spans_both_ends(server: SimServer) -> None:
    draws = iter([0.0, 1.0])
    sleep = RecordingSleep()
    run(server, "r-529x2", sleep=sleep, rand=lambda: next(draws))
    assert sleep.delays == pytest.approx([0.0005, 0.003])


def test_retries_exhausted(server: SimServer) -> None:
    sleep = RecordingSleep()
    outcome = run(server, "r-503", stream=True, sleep=sleep, rand=lambda: 0.5)
    assert outcome.response is None
    assert server.stats() == {"r-503": POLICY.attempts + 1}
    assert len(outcome.attempts) == POLICY.attempts + 1
    assert outcome.error is not None and outcome.error.retryable and outcome.error.status == 503
    assert outcome.attempts[-1].code == outcome.error.code
    assert sleep.delays == pytest.approx([0.001, 0.002, 0.004])  # past the list, the last delay doubles


def test_no_retries_policy_makes_one_request(server: SimServer) -> None:
    outcome = run(server, "r-503", policy=POLICY.model_copy(update={"attempts": 0}))
    assert server.stats() == {"r-503": 1}
    assert len(outcome.attempts) == 1 and outcome.response is None


def test_retry_after_is_honoured(server: SimServer) -> None:
    sleep = RecordingSleep()
    outcome = run(server, "r-ra-short", protocol="openai", sleep=sleep, rand=lambda: 0.5)
    assert outcome.response is not None
    # the server's wait (not the 1 ms backoff) plus jitter: 0.5 x 50% x max(0.25 s, 1 ms)
    assert sleep.delays == pytest.approx([0.25 + 0.0625])
    assert outcome.attempts[0].retry_after_s == 0.25
    assert server.stats() == {"r-ra-short": 2}


def test_retry_after_over_the_cap_gives_up_at_once(server: SimServer) -> None:
    sleep = RecordingSleep()
    outcome = run(server, "r-ra-long", sleep=sleep)
    assert server.stats() == {"r-ra-long": 1}
    assert sleep.delays == []
    assert outcome.response is None
    assert outcome.error is not None and outcome.error.retry_after_s == 30.0
    assert len(outcome.attempts) == 1


@pytest.mark.parametrize("name", ["r-401", "r-quota"])
def test_client_errors_are_not_retried(server: SimServer, name: str) -> None:
    sleep = RecordingSleep()
    outcome = run(server, name, sleep=sleep)
    assert server.stats() == {name: 1}
    assert sleep.delays == []
    assert outcome.error is not None and not outcome.error.retryable
    assert [a.number for a in outcome.attempts] == [1]


def test_mid_stream_failure_is_retried(server: SimServer) -> None:
    outcome = run(server, "r-mid", stream=True)
    assert outcome.response is not None and outcome.response.text == "OK"
    assert [(a.status, a.code) for a in outcome.attempts] == [(200, "mid_stream"), (200, "ok")]
    assert server.stats() == {"r-mid": 2}


def test_retry_delay() -> None:
    policy = RetryPolicy(attempts=5, backoff_s=[10.0, 20.0], jitter=0.25, max_retry_after_s=60.0)
    assert retry_delay(policy, 1, None, 0.5) == 10.0
    assert retry_delay(policy, 2, None, 0.0) == 15.0
    assert retry_delay(policy, 2, None, 1.0) == 25.0
    assert retry_delay(policy, 3, None, 0.5) == 40.0
    # A retry-after is a floor with jitter on top: up to jitter x max(retry-after, backoff).
    assert retry_delay(policy, 1, 60.0, 0.0) == 60.0
    assert retry_delay(policy, 1, 60.0, 0.9) == pytest.approx(60.0 + 0.9 * 0.25 * 60.0)
    assert retry_delay(policy, 1, 60.5, 0.9) is None
    # retry-after: 0 still spreads the retries over the policy's jitter window
    assert retry_delay(policy, 1, 0.0, 0.0) == 0.0
    assert retry_delay(policy, 1, 0.0, 0.9) == pytest.approx(0.9 * 0.25 * 10.0)
    assert len({retry_delay(policy, 2, 0.0, r / 10) for r in range(10)}) == 10
