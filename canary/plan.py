"""Pure planning: which (day, model, canary, sample) slots still need a model call.

Kept free of I/O so that "re-running a day fills only what is missing" is a set difference
that is trivial to test."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date

from canary.config.load import LoadedCanary, Project
from canary.config.models import ResolvedModel
from canary.errors import SetupError

# Outcomes that are facts about the model. `error` and `harness_error` are facts about the
# setup, so a re-run after fixing it retries those slots.
FINAL_OUTCOMES = frozenset({"pass", "fail", "unavailable"})

SlotKey = tuple[str, str, str, int]  # model_id, canary_id, canary_hash, sample_index


@dataclass(frozen=True)
class Probe:
    day: date
    model: ResolvedModel
    canary: LoadedCanary
    sample_index: int
    replace: bool = False  # a stored row for this slot exists and is to be overwritten

    @property
    def key(self) -> SlotKey:
        return (self.model.config.id, self.canary.id, self.canary.hash, self.sample_index)


@dataclass(frozen=True)
class Selection:
    models: list[ResolvedModel]
    canaries: list[LoadedCanary]


def select(
    project: Project,
    *,
    model_ids: Collection[str] = (),
    canary_ids: Collection[str] = (),
    tags: Collection[str] = (),
) -> Selection:
    """Resolve --model/--canary/--tag against the project; unknown names are setup errors."""
    known_models = {m.id: m for m in project.config.models}
    for model_id in model_ids:
        if model_id not in known_models:
            raise SetupError(
                f"unknown model id `{model_id}` (known: {', '.join(known_models)}; see canary.yaml models:)"
            )
    known_canaries = {c.id: c for c in project.canaries}
    for canary_id in canary_ids:
        if canary_id not in known_canaries:
            raise SetupError(
                f"unknown canary id `{canary_id}` (known: {', '.join(known_canaries) or 'none'}; see prompts/)"
            )
    models = [m for m in project.config.models if not model_ids or m.id in model_ids]
    canaries = [
        c
        for c in project.canaries
        if (not canary_ids or c.id in canary_ids) and (not tags or set(tags) & set(c.canary.tags))
    ]
    if not canaries:
        wanted = f" with tag {', '.join(tags)}" if tags else ""
        raise SetupError(f"no canaries to run{wanted} (add canary files to {project.config.prompts}/)")
    return Selection([project.config.model_settings(m) for m in models], canaries)


@dataclass(frozen=True)
class Shard:
    """`--shard i/N`: this host runs the (model, canary) pairs whose stable hash falls in
    bucket i of N, so N hosts on their own timers split the work without talking to each other."""

    index: int  # 1-based
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            left, right = text.split("/")
            index, count = int(left), int(right)
        except ValueError:
            raise SetupError(f"--shard `{text}`: expected i/N, e.g. 1/3") from None
        if not (count >= 1 and 1 <= index <= count):
            raise SetupError(
                f"--shard `{text}`: i must be between 1 and N (1/{max(count, 1)} .. {max(count, 1)}/{max(count, 1)})"
            )
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, model_id: str, canary_id: str) -> bool:
        digest = hashlib.sha256(f"{model_id}\0{canary_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1


def plan(
    selection: Selection,
    *,
    day: date,
    stored: Mapping[SlotKey, str],
    samples: int | None = None,
    force: bool = False,
    shard: Shard | None = None,
) -> list[Probe]:
    """Every slot not yet holding a final outcome (all of them with `force`), interleaved
    across models so that per-model limits never leave the global pool idle."""
    ordered: list[tuple[tuple[int, int, int], Probe]] = []
    for model_pos, model in enumerate(selection.models):
        for canary_pos, canary in enumerate(selection.canaries):
            if shard is not None and not shard.owns(model.config.id, canary.id):
                continue
            count = samples or canary.canary.samples or model.samples
            for index in range(count):
                key = (model.config.id, canary.id, canary.hash, index)
                outcome = stored.get(key)
                if outcome in FINAL_OUTCOMES and not force:
                    continue
                probe = Probe(day, model, canary, index, replace=outcome is not None)
                ordered.append(((index, canary_pos, model_pos), probe))
    ordered.sort(key=lambda item: item[0])
    return [probe for _, probe in ordered]
