"""canary's own retry policy around single-request provider calls.

The SDKs' retries are off so that every HTTP request is counted as an `Attempt`, and so a
server asking for a long `retry-after` ends the sample as unavailable instead of stalling
the run for however long it asked."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from canary.config.models import RetryPolicy
from canary.providers.base import Provider
from canary.records import Attempt, ChatRequest, ChatResponse, ProviderError

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class CallOutcome:
    response: ChatResponse | None
    attempts: list[Attempt]  # one per HTTP request, numbered from 1
    error: ProviderError | None  # the last error when response is None


def retry_delay(
    policy: RetryPolicy, retry_number: int, retry_after_s: float | None, rand: float
) -> float | None:
    """Seconds to wait before retry `retry_number`, or None to give up now.

    A server's retry-after is a floor while it is within the cap (beyond the cap waiting is
    pointless for a canary, so the caller stops at once). On top of it comes a random extra of
    up to `jitter` x the larger of that wait and the policy's backoff for this retry, so that
    clients told `retry-after: 0` (or 1) do not all come back in the same instant and land
    together on the next overloaded slot. Without a retry-after: the backoff +- jitter.
    `rand` is in [0, 1)."""
    base = policy.delay(retry_number)
    if retry_after_s is not None:
        if retry_after_s > policy.max_retry_after_s:
            return None
        return retry_after_s + rand * policy.jitter * max(retry_after_s, base)
    return max(0.0, base * (1 + policy.jitter * (2 * rand - 1)))


async def call_with_retry(
    provider: Provider,
    request: ChatRequest,
    policy: RetryPolicy,
    *,
    turn: int = 1,
    sleep: Sleep = asyncio.sleep,
    rand: Callable[[], float] = random.random,
) -> CallOutcome:
    """Call until a response, an error not to retry (by its class, or the server's
    `x-should-retry: false`), or the policy runs out (attempts+1 requests)."""
    attempts: list[Attempt] = []
    while True:
        number = len(attempts) + 1
        started_at = datetime.now(UTC)
        started = time.monotonic()
        try:
            response = await provider.complete(request)
        except ProviderError as error:
            attempts.append(
                Attempt(
                    number=number,
                    started_at=started_at,
                    latency_s=time.monotonic() - started,
                    status=error.status,
                    code=error.code,
                    message=error.message,
                    retry_after_s=error.retry_after_s,
                    turn=turn,
                    excerpt=error.excerpt,
                )
            )
            if not error.retries or number > policy.attempts:
                return CallOutcome(None, attempts, error)
            delay = retry_delay(policy, number, error.retry_after_s, rand())
            if delay is None:
                return CallOutcome(None, attempts, error)
            await sleep(delay)
            continue
        attempts.append(
            Attempt(
                number=number,
                started_at=started_at,
                latency_s=response.latency_s,
                status=200,
                code="ok",
                turn=turn,
            )
        )
        return CallOutcome(response, attempts, None)
