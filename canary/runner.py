"""Run probes concurrently under per-model and global limits, handing each finished sample
to a sink (the store writer) the moment it completes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from canary.conversation import run_probe
from canary.plan import Probe
from canary.records import SampleResult

# Errors that will fail every further request to the same model: stop sending them.
BREAKING_STATUSES = frozenset({401, 403, 404})
BREAKING_CODES = frozenset({"quota", "insufficient_quota", "authentication_error", "permission_error"})


@dataclass
class ModelTrouble:
    """The first client/config error a model returned (or why it could not be called at all),
    and how many slots were skipped."""

    message: str  # never a secret: a variable name, or the provider's redacted error
    breaking: bool  # the model cannot work at all (bad key, unknown model, quota): skip the rest
    skipped: int = 0
    setup: bool = False  # not called at all: our side is missing something (its API key variable)
    hint: str = ""  # where to fix it, for the person reading the run's output

    @property
    def state(self) -> str:
        """The model's state as the store records it (canary.store.modelstatus)."""
        return "setup" if self.setup else ("rejected" if self.breaking else "partial")


@dataclass
class RunStats:
    samples: list[SampleResult] = field(default_factory=list)
    trouble: dict[str, ModelTrouble] = field(default_factory=dict)
    stopped: BaseException | None = None


def _breaks_model(sample: SampleResult) -> bool:
    if sample.outcome != "error" or not sample.attempts:
        return False
    last = sample.attempts[-1]
    return last.status in BREAKING_STATUSES or last.code in BREAKING_CODES


async def run_probes(
    probes: list[Probe],
    providers: Mapping[str, object],
    *,
    global_limit: int,
    on_sample: Callable[[SampleResult], None],
    should_stop: Callable[[], BaseException | None] = lambda: None,
) -> RunStats:
    stats = RunStats()
    global_sem = asyncio.Semaphore(global_limit)
    model_sems = {p.model.config.id: asyncio.Semaphore(p.model.concurrency) for p in probes}
    stop = asyncio.Event()

    async def one(probe: Probe) -> None:
        model_id = probe.model.config.id
        async with model_sems[model_id], global_sem:
            if stop.is_set():
                return
            trouble = stats.trouble.get(model_id)
            if trouble is not None and trouble.breaking:
                trouble.skipped += 1
                return
            sample = await run_probe(providers[model_id], probe)
        if sample.outcome == "error":
            breaking = _breaks_model(sample)
            known = stats.trouble.get(model_id)
            if known is None or (breaking and not known.breaking):
                stats.trouble[model_id] = ModelTrouble(
                    sample.error_message or sample.error_code or "error", breaking
                )
        stats.samples.append(sample)
        on_sample(sample)
        problem = should_stop()
        if problem is not None:
            stats.stopped = problem
            stop.set()

    await asyncio.gather(*(one(p) for p in probes))
    return stats
