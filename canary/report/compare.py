"""The comparison table read before promoting a model version: the same canaries, the same days.

Only each canary's *current* content counts (an edited canary is a different test), over the
last `COMPARE_DAYS` days, and only canaries that at least two models answered in that window.
A model's summary pools exactly those canaries, so two columns are comparable. Each pass rate
carries a Wilson 95 % interval: with 5 samples a day, a few points of difference are noise, and
the table marks a cell only when its interval lies wholly below the best one's."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from canary.report.data import DayAgg, PairKey, PerHash, Quantiles

COMPARE_DAYS = 14
Z95 = 1.959963984540054


def wilson(passes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial rate (sane at 0 % and 100 %, unlike p +- 2 se)."""
    if n == 0:
        return 0.0, 1.0
    p = passes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


class _Rates:
    """Rates shared by a cell and a column (both carry passes, scored and output_tokens)."""

    passes: int
    scored: int
    output_tokens: int

    @property
    def rate(self) -> float | None:
        return self.passes / self.scored if self.scored else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.passes, self.scored)

    @property
    def tokens(self) -> float | None:
        return self.output_tokens / self.scored if self.scored else None


@dataclass(frozen=True)
class Cell(_Rates):
    """One model on one canary over the window."""

    passes: int
    scored: int
    output_tokens: int
    unavailable: int


@dataclass(frozen=True)
class Row:
    canary_id: str
    cells: dict[str, Cell]  # model id -> cell (absent: no scored data)
    best: str | None  # the model with the highest pass rate (ties: first in model order)
    lower: frozenset[str]  # models whose interval lies wholly below the best's


@dataclass
class Column(_Rates):
    """A model's totals over the compared canaries."""

    model_id: str
    passes: int = 0
    scored: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    priced: int = 0
    unavailable: int = 0
    canaries: int = 0
    latency: Quantiles | None = None

    @property
    def cost_per_correct(self) -> float | None:
        return self.cost_usd / self.passes if self.priced and self.passes else None

    @property
    def availability(self) -> float | None:
        total = self.scored + self.unavailable
        return 1 - self.unavailable / total if total else None


@dataclass
class Comparison:
    start: date
    end: date
    models: list[str]
    rows: list[Row]
    columns: dict[str, Column] = field(default_factory=dict)

    def pairs(self) -> set[PairKey]:
        """(model, canary) pairs that enter the comparison (for the latency query)."""
        return {(m, r.canary_id) for r in self.rows for m in r.cells}


def _window_sum(series: Mapping[date, DayAgg], start: date, end: date) -> DayAgg:
    total = DayAgg()
    for day, counts in series.items():
        if start <= day <= end:
            total = total + counts
    return total


def compare(
    aggregates: Mapping[PairKey, PerHash],
    hashes: Mapping[str, str],
    model_ids: Sequence[str],
    canary_ids: Sequence[str],
    start: date,
    end: date,
) -> Comparison:
    """Pass rates and tokens per canary, and per-model totals, over [start, end]."""
    sums: dict[PairKey, DayAgg] = {}
    for model_id in model_ids:
        for canary_id in canary_ids:
            per_hash = aggregates.get((model_id, canary_id), {})
            series = per_hash.get(hashes[canary_id])
            if series:
                sums[(model_id, canary_id)] = _window_sum(series, start, end)
    rows: list[Row] = []
    for canary_id in canary_ids:
        cells = {
            m: Cell(s.passes, s.scored, s.output_tokens, s.unavailable)
            for m in model_ids
            if (s := sums.get((m, canary_id))) is not None and s.scored > 0
        }
        if len(cells) < 2:
            continue
        best = max(cells, key=lambda m: (cells[m].rate, -model_ids.index(m)))
        floor = cells[best].interval[0]
        lower = frozenset(m for m, c in cells.items() if c.interval[1] < floor)
        rows.append(Row(canary_id, cells, best, lower))
    models = [m for m in model_ids if any(m in r.cells for r in rows)]
    columns = {m: Column(m) for m in models}
    for row in rows:
        for m in row.cells:
            s, col = sums[(m, row.canary_id)], columns[m]
            col.passes += s.passes
            col.scored += s.scored
            col.output_tokens += s.output_tokens
            col.cost_usd += s.cost_usd
            col.priced += s.priced
            col.unavailable += s.unavailable
            col.canaries += 1
    return Comparison(start, end, models, rows, columns)


def add_latency(comparison: Comparison, latency: Mapping[str, Quantiles]) -> Comparison:
    for model_id, column in comparison.columns.items():
        column.latency = latency.get(model_id)
    return comparison
