"""The report's charts, built from day views: what each chart plots and how its points read.

Every chart of a series shares its no-data / outage columns and change markers, so a reader can
line up a drop in the pass rate with an outage, a new served model or an edited canary."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from canary.report import fmt
from canary.report.charts import Chart, SeriesSpec, Spark, axis_format, sparkline, time_chart
from canary.report.series import DayView

PERCENT = axis_format(suffix="%", factor=100.0)
MarkerSpec = tuple[int, str, str, str]  # (day index, kind, letter, title)
LETTERS = {"served": "S", "fingerprint": "F", "content": "C"}
MARKER_TEXT = {
    "served": "served model changed",
    "fingerprint": "system fingerprint changed",
    "content": "canary content changed",
}


def spans_of(days: Sequence[DayView]) -> list[tuple[int, str, str]]:
    out = []
    for i, d in enumerate(days):
        if d.state == "no_data":
            extra = f" ({d.counts.errors} setup errors)" if d.counts and d.counts.errors else ""
            out.append((i, "no_data", f"{d.day}: no data{extra}"))
        elif d.state == "outage" and d.counts:
            out.append(
                (
                    i,
                    "outage",
                    f"{d.day}: outage, {d.counts.unavailable} of {d.counts.total} samples "
                    "unavailable (not counted as quality)",
                )
            )
    return out


def markers_of(window: Sequence[date], changes: Sequence[tuple[date, str, str]]) -> list[MarkerSpec]:
    """(day, kind, text) changes to chart markers; several on one day become one title per kind."""
    index = {d: i for i, d in enumerate(window)}
    merged: dict[tuple[int, str], list[str]] = {}
    for day, kind, text in changes:
        if day in index:
            merged.setdefault((index[day], kind), []).append(text)
    return [
        (i, kind, LETTERS[kind], f"{window[i]}: {MARKER_TEXT[kind]}: " + "; ".join(texts))
        for (i, kind), texts in sorted(merged.items())
    ]


def _rate_title(d: DayView) -> str:
    c = d.counts
    if c is None or not c.scored:
        return ""
    text = f"{d.day}: {fmt.pct(d.rate)} passed ({c.passes}/{c.scored})"
    if d.band is not None:
        text += f"; band {fmt.pct0(d.band[0])}–{fmt.pct0(d.band[1])}, rolling mean {fmt.pct(d.mean)}"
    if c.unavailable:
        text += f"; {c.unavailable} unavailable"
    return text + ("; ALARM" if d.alarm else "")


def pass_rate_chart(
    chart_id: str,
    title: str,
    days: Sequence[DayView],
    markers: Sequence[MarkerSpec],
    sigma: float,
    window_days: int,
) -> Chart:
    return time_chart(
        chart_id,
        title,
        [d.day for d in days],
        [
            SeriesSpec(
                "rate", "daily pass rate", [d.rate for d in days], "circle", [_rate_title(d) for d in days]
            ),
            SeriesSpec(
                "mean", f"rolling mean ({window_days} days with data)", [d.mean for d in days], "none"
            ),
        ],
        y_format=PERCENT,
        y_label="pass rate",
        y_max=1.0,
        band=[d.band for d in days],
        band_label=f"±{sigma:g}σ band",
        spans=spans_of(days),
        markers=markers,
        alarms=[(i, f"{d.day}: alarm ({_rate_title(d)})") for i, d in enumerate(days) if d.alarm],
    )


def tokens_chart(chart_id: str, days: Sequence[DayView], markers: Sequence[MarkerSpec]) -> Chart:
    titles = [
        f"{d.day}: {fmt.tokens(d.tokens)} output tokens per task" if d.tokens is not None else ""
        for d in days
    ]
    return time_chart(
        chart_id,
        "Output tokens per task",
        [d.day for d in days],
        [SeriesSpec("tokens", "output tokens per scored sample", [d.tokens for d in days], "circle", titles)],
        y_format=axis_format(),
        y_label="tokens",
        spans=spans_of(days),
        markers=markers,
    )


def latency_chart(chart_id: str, days: Sequence[DayView], markers: Sequence[MarkerSpec]) -> Chart:
    def titles(which: str) -> list[str]:
        out = []
        for d in days:
            q = d.latency
            out.append(f"{d.day}: {which} {fmt.seconds(getattr(q, which))} over {q.n} samples" if q else "")
        return out

    return time_chart(
        chart_id,
        "Latency",
        [d.day for d in days],
        [
            SeriesSpec(
                "p95",
                "p95 latency",
                [d.latency.p95 if d.latency else None for d in days],
                "square",
                titles("p95"),
            ),
            SeriesSpec(
                "p50",
                "median latency",
                [d.latency.p50 if d.latency else None for d in days],
                "circle",
                titles("p50"),
            ),
        ],
        y_format=axis_format(suffix=" s"),
        y_label="seconds",
        spans=spans_of(days),
        markers=markers,
    )


def pair_latency_chart(chart_id: str, days: Sequence[DayView], markers: Sequence[MarkerSpec]) -> Chart:
    """A model x canary series has a few samples a day: their mean, and the slowest one (which
    is their nearest-rank p95 for up to 20 samples)."""
    slowest = [d.counts.latency_max if d.counts else None for d in days]
    mean = [d.counts.latency_mean if d.counts else None for d in days]
    n = [d.counts.scored if d.counts else 0 for d in days]
    return time_chart(
        chart_id,
        "Latency",
        [d.day for d in days],
        [
            SeriesSpec(
                "p95",
                "slowest sample",
                slowest,
                "square",
                [
                    f"{d.day}: slowest of {k} samples {fmt.seconds(v)}" if v is not None else ""
                    for d, v, k in zip(days, slowest, n, strict=True)
                ],
            ),
            SeriesSpec(
                "p50",
                "mean",
                mean,
                "circle",
                [
                    f"{d.day}: mean of {k} samples {fmt.seconds(v)}" if v is not None else ""
                    for d, v, k in zip(days, mean, n, strict=True)
                ],
            ),
        ],
        y_format=axis_format(suffix=" s"),
        y_label="seconds",
        spans=spans_of(days),
        markers=markers,
    )


def availability_chart(
    chart_id: str, days: Sequence[DayView], markers: Sequence[MarkerSpec], max_unavailable: float
) -> Chart:
    titles = [
        f"{d.day}: {fmt.pct(d.availability)} available "
        f"({d.counts.total - d.counts.unavailable}/{d.counts.total})"
        if d.counts and d.counts.total
        else ""
        for d in days
    ]
    values = [d.availability for d in days]
    return time_chart(
        chart_id,
        "Availability",
        [d.day for d in days],
        [
            SeriesSpec("avail", "answered (not unavailable)", values, "diamond", titles),
            SeriesSpec(
                "limit",
                f"alert limit ({fmt.pct0(1 - max_unavailable)})",
                [1 - max_unavailable if v is not None else None for v in values],
                "none",
            ),
        ],
        y_format=PERCENT,
        y_label="available",
        y_max=1.0,
        spans=spans_of(days),
        markers=markers,
    )


def cost_chart(chart_id: str, days: Sequence[DayView], markers: Sequence[MarkerSpec]) -> Chart:
    titles = [
        f"{d.day}: {fmt.usd(d.cost_per_correct)} per correct answer" if d.cost_per_correct is not None else ""
        for d in days
    ]
    return time_chart(
        chart_id,
        "Cost per correct answer",
        [d.day for d in days],
        [
            SeriesSpec(
                "cost", "cost of all samples ÷ passes", [d.cost_per_correct for d in days], "circle", titles
            )
        ],
        y_format=axis_format(prefix="$"),
        y_label="USD",
        spans=spans_of(days),
        markers=markers,
    )


def trend(days: Sequence[DayView], label: str) -> Spark:
    with_data = [d for d in days if d.rate is not None]
    title = (
        f"{label}: pass rate over {len(days)} days, {len(with_data)} with data"
        if with_data
        else f"{label}: no data in {len(days)} days"
    )
    return sparkline([d.rate for d in days], [d.band for d in days], title=title)
