"""Per-model status of each run: did the model answer, or why could it not be monitored.

One model's missing key variable or refused key is that model's problem: the run goes on with
the others and writes one row here per model it was meant to call, so that `canary check` (the
`config` signal), `canary status` and the report can say which models are not being monitored
and why, and notice when they answer again."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from canary.store.schema import MODEL_STATES, model_status
from canary.store.store import Store


@dataclass(frozen=True)
class ModelStatus:
    """What one run found about one model."""

    model_id: str
    state: str  # ok | setup | rejected | partial
    reason: str = ""  # a variable name or the vendor's redacted error; never a secret
    skipped: int = 0  # slots not called because of it


@dataclass(frozen=True)
class ModelStatusRow:
    day: date
    model_id: str
    run_id: str | None
    at: datetime
    state: str
    reason: str
    skipped: int

    @property
    def ok(self) -> bool:
        return self.state == "ok"


def record(
    store: Store, statuses: Iterable[ModelStatus], *, day: date, run_id: str | None, at: datetime
) -> None:
    """Write one run's statuses in one transaction."""
    values = []
    for s in statuses:
        if s.state not in MODEL_STATES:
            raise ValueError(f"model state must be one of {', '.join(MODEL_STATES)}, not {s.state!r}")
        values.append(
            {
                "day": day,
                "model_id": s.model_id,
                "run_id": run_id,
                "at": at,
                "state": s.state,
                "reason": s.reason,
                "skipped": s.skipped,
            }
        )
    if not values:
        return
    with store.writing() as conn:
        conn.execute(model_status.insert(), values)


def latest(store: Store, model_ids: Collection[str], *, up_to: date) -> dict[str, ModelStatusRow]:
    """Each model's newest status on or before `up_to`: the last one written for its newest day
    with any (so a backfill of an older day never hides what a later day found)."""
    if not model_ids:
        return {}
    c = model_status.c
    newest_day = (
        sa.select(c.model_id, sa.func.max(c.day).label("day"))
        .where(c.model_id.in_(list(model_ids)), c.day <= up_to)
        .group_by(c.model_id)
        .subquery()
    )
    stmt = (
        sa.select(model_status)
        .join(newest_day, sa.and_(c.model_id == newest_day.c.model_id, c.day == newest_day.c.day))
        .order_by(c.model_id, c.at, c.id)
    )
    out: dict[str, ModelStatusRow] = {}
    with store.reading() as conn:
        for row in conn.execute(stmt).mappings():
            out[row["model_id"]] = ModelStatusRow(
                row["day"],
                row["model_id"],
                row["run_id"],
                row["at"],
                row["state"],
                row["reason"],
                row["skipped"],
            )
    return out
