"""Compose the stages for one `canary run`: config -> plan -> run -> score -> store.

The only module besides the CLI that imports every stage."""

from __future__ import annotations

import asyncio
import os
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from canary.config.load import Project, check_keys
from canary.errors import CanaryError
from canary.plan import Probe, Selection, Shard, plan, select
from canary.runner import ModelTrouble, RunStats, run_probes

SIM_DAY_HEADER = "x-canary-sim-day"


@dataclass
class RunOptions:
    model_ids: tuple[str, ...] = ()
    canary_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    samples: int | None = None
    as_of: date | None = None
    force: bool = False
    quiet: bool = False
    wait: bool = False  # wait for another run holding the lock instead of exiting 75
    shard: Shard | None = None


@dataclass
class RunReport:
    run_id: str | None
    day: date
    planned: int
    already: int
    stats: RunStats = field(default_factory=RunStats)

    @property
    def trouble(self) -> dict[str, ModelTrouble]:
        return self.stats.trouble


def utc_today() -> date:
    return datetime.now(UTC).date()


def _start_sim(project: Project, selection: Selection, stack: ExitStack):
    from canary.sim import SimServer, script_from_project

    canaries = [c.canary for c in project.canaries]
    server = SimServer(script_from_project(project.config.models, canaries)).start()
    stack.callback(server.stop)
    return server


def _build_providers(selection: Selection, day: date, sim_server) -> dict[str, object]:
    from canary.providers import build_provider

    providers: dict[str, object] = {}
    for model in selection.models:
        cfg = model.config
        if cfg.provider == "sim":
            base = sim_server.anthropic_base_url if cfg.wire == "anthropic" else sim_server.openai_base_url
            providers[cfg.id] = build_provider(
                model, api_key="sim-key-unused", base_url=base, extra_headers={SIM_DAY_HEADER: day.isoformat()}
            )
        else:
            key = os.environ.get(cfg.key_env) if cfg.key_env else None
            providers[cfg.id] = build_provider(model, api_key=key)
    return providers


async def _close_providers(providers: dict[str, object]) -> None:
    for provider in providers.values():
        with suppress(Exception):  # closing is best effort; results are already stored
            await provider.aclose()  # type: ignore[attr-defined]


def run(project: Project, options: RunOptions, *, store=None, on_start=None) -> RunReport:
    """Run every missing slot of the day and store each sample as it completes.

    `on_start(report)` is called once this run holds the run lock and has planned the day (the
    heartbeat's "started" ping); a run that finds the lock taken never starts."""
    from canary.progress import make_progress
    from canary.store import SampleWriter, Store
    from canary.store.runlock import RunLock

    selection = select(project, model_ids=options.model_ids, canary_ids=options.canary_ids, tags=options.tags)
    check_keys(project, [m.config for m in selection.models])
    day = options.as_of or utc_today()
    with ExitStack() as stack:
        if store is None:
            store = Store.open(project.store_url, base_dir=project.root)
            stack.callback(store.close)
        stack.enter_context(RunLock(store, scope=str(options.shard or "all"), wait=options.wait))
        # A run killed with kill -9 stays "running"; now that we hold the lock, it is not.
        store.mark_abandoned_runs(older_than=timedelta(hours=24))
        stored = store.stored_outcomes(day, [m.config.id for m in selection.models])
        probes = plan(selection, day=day, stored=stored, samples=options.samples, force=options.force,
                      shard=options.shard)
        report = RunReport(None, day, len(probes), len(stored))
        if on_start is not None:
            on_start(report)
        if not probes:
            return report
        store.save_canaries(
            (c.id, c.hash, c.canary.kind, c.canary.model_dump_json(exclude={"sim"})) for c in selection.canaries
        )
        sim_server = None
        if any(m.config.provider == "sim" for m in selection.models):
            sim_server = _start_sim(project, selection, stack)
        providers = _build_providers(selection, day, sim_server)
        run_id = store.start_run(day=day, model_ids=[m.config.id for m in selection.models], n_planned=len(probes))
        report.run_id = run_id
        writer = SampleWriter(store, run_id)
        replace = {p.key for p in probes if p.replace}
        progress = make_progress(len(probes), quiet=options.quiet)
        status = "interrupted"
        try:
            report.stats = asyncio.run(_run_all(probes, providers, project, writer, replace, progress))
            status = "failed" if report.stats.stopped else "finished"
        finally:
            progress.close()
            failure: CanaryError | None = None
            try:
                written = writer.close()
            except CanaryError as exc:
                failure, written, status = exc, writer.written, "failed"
            with suppress(CanaryError):  # the samples are what matters; the run row is bookkeeping
                store.finish_run(run_id, status=status, n_done=written)
        if failure is not None:
            raise failure
        if report.stats.stopped is not None:
            raise report.stats.stopped
        return report


async def _run_all(probes: list[Probe], providers, project: Project, writer, replace, progress) -> RunStats:
    def on_sample(sample) -> None:
        writer.submit(sample, replace=sample.key in replace)
        progress.advance(sample)

    try:
        return await run_probes(
            probes, providers, global_limit=project.config.defaults.global_concurrency,
            on_sample=on_sample, should_stop=lambda: writer.error,
        )
    finally:
        await _close_providers(providers)
