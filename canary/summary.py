"""Per-model summary of a run: what a person reads at the end of `canary run`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from canary.records import SampleResult


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil
    return ordered[int(rank) - 1]


@dataclass
class ModelSummary:
    model_id: str
    counts: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    priced: bool = False
    latencies: list[float] = field(default_factory=list)

    @property
    def scored(self) -> int:
        return self.counts.get("pass", 0) + self.counts.get("fail", 0)

    @property
    def pass_rate(self) -> float | None:
        return self.counts.get("pass", 0) / self.scored if self.scored else None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict:
        return {
            "model": self.model_id,
            "samples": self.total,
            "pass": self.counts.get("pass", 0),
            "fail": self.counts.get("fail", 0),
            "unavailable": self.counts.get("unavailable", 0),
            "error": self.counts.get("error", 0),
            "harness_error": self.counts.get("harness_error", 0),
            "pass_rate": self.pass_rate,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 6) if self.priced else None,
            "latency_p50_s": percentile(self.latencies, 50),
            "latency_p95_s": percentile(self.latencies, 95),
        }


def summarize(samples: Iterable[SampleResult]) -> list[ModelSummary]:
    by_model: dict[str, ModelSummary] = {}
    for s in samples:
        m = by_model.setdefault(s.model_id, ModelSummary(s.model_id))
        m.counts[s.outcome] = m.counts.get(s.outcome, 0) + 1
        m.input_tokens += s.input_tokens
        m.output_tokens += s.output_tokens
        if s.cost_usd is not None:
            m.cost_usd += s.cost_usd
            m.priced = True
        if s.outcome in ("pass", "fail"):
            m.latencies.append(s.latency_s)
    return [by_model[k] for k in sorted(by_model)]


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def render_table(summaries: list[ModelSummary], title: str):
    """A rich Table; rich prints it plainly when stdout is not a terminal."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name, justify in [
        ("model", "left"),
        ("pass rate", "right"),
        ("pass", "right"),
        ("fail", "right"),
        ("unavail.", "right"),
        ("errors", "right"),
        ("tokens in/out", "right"),
        ("cost $", "right"),
        ("p50 s", "right"),
        ("p95 s", "right"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for m in summaries:
        d = m.as_dict()
        errors = d["error"] + d["harness_error"]
        table.add_row(
            m.model_id,
            _fmt(m.pass_rate, "{:.1%}"),
            str(d["pass"]),
            str(d["fail"]),
            str(d["unavailable"]),
            str(errors),
            f"{d['input_tokens']:,}/{d['output_tokens']:,}",
            _fmt(d["cost_usd"], "{:.4f}"),
            _fmt(d["latency_p50_s"], "{:.2f}"),
            _fmt(d["latency_p95_s"], "{:.2f}"),
        )
    return table
