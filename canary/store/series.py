"""Daily series for detection and the report, aggregated in SQL (one row per day, not per sample)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa

from canary.store.schema import runs, samples
from canary.store.store import Store


@dataclass(frozen=True)
class DayCounts:
    """One series' day. Quality counts only pass/fail; availability counts every answered or
    unavailable sample (error and harness_error are setup problems, not the model's)."""

    day: date
    passes: int = 0
    scored: int = 0  # pass + fail
    unavailable: int = 0
    output_tokens: int = 0  # summed over scored samples
    cost_usd: float = 0.0  # summed over every sample with a price
    priced: int = 0  # samples that had a price

    @property
    def total(self) -> int:
        return self.scored + self.unavailable

    def __add__(self, other: DayCounts) -> DayCounts:
        return DayCounts(
            self.day,
            self.passes + other.passes,
            self.scored + other.scored,
            self.unavailable + other.unavailable,
            self.output_tokens + other.output_tokens,
            self.cost_usd + other.cost_usd,
            self.priced + other.priced,
        )


SeriesKey = tuple[str, str]  # (model_id, canary_id)


def daily_counts(
    store: Store,
    model_ids: Collection[str],
    canary_hashes: Mapping[str, str],
    start: date,
    end: date,
) -> dict[SeriesKey, dict[date, DayCounts]]:
    """Per (model, canary) and day, for the canaries' *current* content hashes only: an edited
    canary starts a new series instead of looking like a regression."""
    if not model_ids or not canary_hashes:
        return {}
    c = samples.c
    scored = c.outcome.in_(("pass", "fail"))
    stmt = (
        sa.select(
            c.model_id,
            c.canary_id,
            c.canary_hash,
            c.day,
            sa.func.sum(sa.case((c.outcome == "pass", 1), else_=0)),
            sa.func.sum(sa.case((scored, 1), else_=0)),
            sa.func.sum(sa.case((c.outcome == "unavailable", 1), else_=0)),
            sa.func.sum(sa.case((scored, c.output_tokens), else_=0)),
            sa.func.sum(sa.func.coalesce(c.cost_usd, 0.0)),
            sa.func.sum(sa.case((c.cost_usd.is_not(None), 1), else_=0)),
        )
        .where(
            c.model_id.in_(list(model_ids)), c.canary_id.in_(list(canary_hashes)), c.day.between(start, end)
        )
        .group_by(c.model_id, c.canary_id, c.canary_hash, c.day)
    )
    out: dict[SeriesKey, dict[date, DayCounts]] = defaultdict(dict)
    with store.reading() as conn:
        for model_id, canary_id, canary_hash, day, p, s, u, tok, cost, priced in conn.execute(stmt):
            if canary_hashes.get(canary_id) != canary_hash:
                continue
            out[(model_id, canary_id)][day] = DayCounts(
                day, int(p), int(s), int(u), int(tok), float(cost), int(priced)
            )
    return dict(out)


def overall(per_canary: Mapping[SeriesKey, Mapping[date, DayCounts]], model_id: str) -> dict[date, DayCounts]:
    """A model's series over all its canaries: the per-canary days summed."""
    days: dict[date, DayCounts] = {}
    for (model, _), series in per_canary.items():
        if model != model_id:
            continue
        for day, counts in series.items():
            days[day] = days[day] + counts if day in days else counts
    return days


def latencies(
    store: Store, model_ids: Collection[str], canary_hashes: Mapping[str, str], start: date, end: date
) -> dict[str, dict[str, dict[date, list[float]]]]:
    """Latency of every scored sample, per model, canary and day, for the canaries' *current*
    content hashes only (like `daily_counts`), so a model's p95 can be taken over the same canary
    versions today and in the baseline. Raw values: a percentile is not portable SQL."""
    if not model_ids or not canary_hashes:
        return {}
    c = samples.c
    stmt = sa.select(c.model_id, c.canary_id, c.canary_hash, c.day, c.latency_s).where(
        c.model_id.in_(list(model_ids)),
        c.canary_id.in_(list(canary_hashes)),
        c.day.between(start, end),
        c.outcome.in_(("pass", "fail")),
    )
    out: dict[str, dict[str, dict[date, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    with store.reading() as conn:
        for model_id, canary_id, canary_hash, day, latency in conn.execute(stmt):
            if canary_hashes.get(canary_id) == canary_hash:
                out[model_id][canary_id][day].append(float(latency))
    return {m: {k: dict(d) for k, d in per.items()} for m, per in out.items()}


def served_models(
    store: Store, model_ids: Collection[str], start: date, end: date
) -> dict[str, dict[date, set[tuple[str | None, str | None]]]]:
    """The distinct (served model, fingerprint) pairs each model answered with, per day."""
    c = samples.c
    stmt = (
        sa.select(c.model_id, c.day, c.served_model, c.fingerprint)
        .where(c.model_id.in_(list(model_ids)), c.day.between(start, end), c.outcome.in_(("pass", "fail")))
        .distinct()
    )
    out: dict[str, dict[date, set]] = defaultdict(lambda: defaultdict(set))
    with store.reading() as conn:
        for model_id, day, served, fingerprint in conn.execute(stmt):
            out[model_id][day].add((served, fingerprint))
    return {m: dict(d) for m, d in out.items()}


def end_of_day(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


def last_completed_run(store: Store, *, up_to: date) -> datetime | None:
    """When the newest finished run (for a day up to `up_to`) completed. A backfilled run
    (`--as-of` a past day) counts as completed at the end of the day it recorded."""
    c = runs.c
    stmt = sa.select(c.day, c.finished_at).where(c.status == "finished", c.day <= up_to)
    newest: datetime | None = None
    with store.reading() as conn:
        for day, finished in conn.execute(stmt):
            if finished is None:
                continue
            at = min(finished, end_of_day(day))
            newest = at if newest is None or at > newest else newest
    return newest
