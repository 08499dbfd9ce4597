"""Compose the stages for one `canary run`: config -> plan -> run -> score -> store.

The only module besides the CLI that imports every stage."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Collection, Mapping
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from canary.config.load import Project, key_location, missing_key_vars
from canary.config.models import ModelConfig
from canary.errors import EXIT_CONFIG, EXIT_UNAVAILABLE, CanaryError
from canary.plan import Probe, Selection, Shard, plan, select
from canary.runner import ModelTrouble, RunStats, run_probes

if TYPE_CHECKING:
    from canary.store import Store

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
    # (sample key, why) of samples the database refused, stored as harness_error instead
    unstorable: list[tuple[tuple[str, str, str, int], str]] = field(default_factory=list)

    @property
    def trouble(self) -> dict[str, ModelTrouble]:
        return self.stats.trouble

    @property
    def trouble_exit_code(self) -> int | None:
        """78 when a model could not be called (its key variable is unset), 69 when a service
        refused one (bad key, unknown model, quota), None when every model answered."""
        if any(t.setup for t in self.trouble.values()):
            return EXIT_CONFIG
        return EXIT_UNAVAILABLE if self.trouble else None


def utc_today() -> date:
    return datetime.now(UTC).date()


def _start_sim(project: Project, selection: Selection, stack: ExitStack):
    from canary.sim import SimServer, script_from_project

    canaries = [c.canary for c in project.canaries]
    server = SimServer(script_from_project(project.config.models, canaries)).start()
    stack.callback(server.stop)
    return server


def _build_providers(
    selection: Selection, day: date, sim_server, skip: Collection[str] = ()
) -> dict[str, object]:
    from canary.providers import build_provider

    providers: dict[str, object] = {}
    for model in selection.models:
        cfg = model.config
        if cfg.id in skip:
            continue
        if cfg.provider == "sim":
            base = sim_server.anthropic_base_url if cfg.wire == "anthropic" else sim_server.openai_base_url
            providers[cfg.id] = build_provider(
                model,
                api_key="sim-key-unused",
                base_url=base,
                extra_headers={SIM_DAY_HEADER: day.isoformat()},
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
    # A model whose key variable is unset is not called; the others run (see _without_keys).
    missing = {m.id: (m, var) for m, var in missing_key_vars([m.config for m in selection.models])}
    day = options.as_of or utc_today()
    with ExitStack() as stack:
        if store is None:
            store = Store.open(project.store_url, base_dir=project.root)
            stack.callback(store.close)
        stack.enter_context(RunLock(store, scope=str(options.shard or "all"), wait=options.wait))
        # A run killed with kill -9 stays "running"; now that we hold the lock, it is not.
        store.mark_abandoned_runs(older_than=timedelta(hours=24))
        stored = store.stored_outcomes(day, [m.config.id for m in selection.models])
        probes = plan(
            selection,
            day=day,
            stored=stored,
            samples=options.samples,
            force=options.force,
            shard=options.shard,
        )
        probes, setup_trouble = _without_keys(project, probes, missing)
        report = RunReport(None, day, len(probes), len(stored))
        report.stats.trouble.update(setup_trouble)
        if on_start is not None:
            on_start(report)
        if not probes:
            _record_status(store, report, run_models=set())
            return report
        store.save_canaries(
            (c.id, c.hash, c.canary.kind, c.canary.model_dump_json(exclude={"sim"}))
            for c in selection.canaries
        )
        sim_server = None
        if any(m.config.provider == "sim" for m in selection.models):
            sim_server = _start_sim(project, selection, stack)
        providers = _build_providers(selection, day, sim_server, skip=missing)
        run_id = store.start_run(
            day=day, model_ids=[m.config.id for m in selection.models], n_planned=len(probes)
        )
        report.run_id = run_id
        writer = SampleWriter(store, run_id)
        replace = {p.key for p in probes if p.replace}
        progress = make_progress(len(probes), quiet=options.quiet)
        status = "interrupted"
        try:
            report.stats = asyncio.run(_run_all(probes, providers, project, writer, replace, progress))
            report.stats.trouble.update(setup_trouble)
            status = "failed" if report.stats.stopped else "finished"
        finally:
            progress.close()
            failure: CanaryError | None = None
            try:
                written = writer.close()
            except CanaryError as exc:
                failure, written, status = exc, writer.written, "failed"
            report.unstorable = writer.unstorable
            _mark_unstorable(report)
            with suppress(CanaryError):  # the samples are what matters; the run row is bookkeeping
                store.finish_run(run_id, status=status, n_done=written)
        if failure is not None:
            raise failure
        if report.stats.stopped is not None:
            raise report.stats.stopped
        _record_status(store, report, run_models={p.model.config.id for p in probes})
        return report


def _without_keys(
    project: Project, probes: list[Probe], missing: Mapping[str, tuple[ModelConfig, str]]
) -> tuple[list[Probe], dict[str, ModelTrouble]]:
    """Take out the probes of models whose key variable is unset: those models are not called
    at all, and each gets a setup trouble naming the variable (never a value)."""
    trouble: dict[str, ModelTrouble] = {}
    kept = []
    for probe in probes:
        model_id = probe.model.config.id
        if model_id not in missing:
            kept.append(probe)
            continue
        if model_id not in trouble:
            model, var = missing[model_id]
            trouble[model_id] = ModelTrouble(
                f"environment variable {var} is not set",
                breaking=True,
                setup=True,
                hint=f"{key_location(project, model)}: export {var}=... where canary runs",
            )
        trouble[model_id].skipped += 1
    return kept, trouble


def _record_status(store: Store, report: RunReport, *, run_models: set[str]) -> None:
    """One status row per model this run was meant to call: what the `config` alert reads."""
    from canary.store.modelstatus import ModelStatus, record

    answered = {s.model_id for s in report.stats.samples}
    statuses = [
        ModelStatus(model_id, t.state, t.message, t.skipped) for model_id, t in sorted(report.trouble.items())
    ]
    statuses += [ModelStatus(m, "ok") for m in sorted(run_models & answered) if m not in report.trouble]
    record(store, statuses, day=report.day, run_id=report.run_id, at=datetime.now(UTC))


def _mark_unstorable(report: RunReport) -> None:
    """Make the in-memory samples say what the store says about the ones it refused."""
    why = dict(report.unstorable)
    for sample in report.stats.samples:
        if sample.key in why:
            sample.outcome, sample.score, sample.error_code = "harness_error", None, "unstorable"
            sample.reason = sample.error_message = why[sample.key]


async def _run_all(probes: list[Probe], providers, project: Project, writer, replace, progress) -> RunStats:
    def on_sample(sample) -> None:
        writer.submit(sample, replace=sample.key in replace)
        progress.advance(sample)

    try:
        # Only a store outage stops the run: a sample the database refuses is stored as its
        # own harness_error by the writer, and the other samples go on.
        return await run_probes(
            probes,
            providers,
            global_limit=project.config.defaults.global_concurrency,
            on_sample=on_sample,
            should_stop=lambda: writer.error,
        )
    finally:
        await _close_providers(providers)
