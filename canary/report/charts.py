"""Chart geometry as plain data: scales, ticks, SVG path strings, band polygons.

No markup here: templates/charts.html.j2 draws these objects, so every label passes through
Jinja's autoescape, and the tests check numbers instead of parsing SVG. A day without data is
a gap in every line and band, never a line drawn across it (and never a zero)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

Band = tuple[float, float] | None


@dataclass(frozen=True)
class Scale:
    """Linear map from a domain [d0, d1] to a range [r0, r1] (r0 > r1 for a y axis)."""

    d0: float
    d1: float
    r0: float
    r1: float

    def __call__(self, value: float) -> float:
        if self.d1 == self.d0:
            return (self.r0 + self.r1) / 2
        return self.r0 + (value - self.d0) * (self.r1 - self.r0) / (self.d1 - self.d0)


def nice_step(span: float, count: int) -> float:
    """A 1/2/2.5/5 x 10^k step giving about `count` intervals over `span` (readable tick labels)."""
    if span <= 0:
        return 1.0
    raw = span / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if raw <= mult * power * (1 + 1e-9):
            return mult * power
    return 10 * power  # pragma: no cover - the loop always returns


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Ticks from a round number <= lo to a round number >= hi."""
    if hi <= lo:
        hi = lo + 1.0
    step = nice_step(hi - lo, count)
    start = math.floor(lo / step + 1e-9) * step
    ticks = []
    k = 0
    while True:
        value = start + k * step
        ticks.append(round(value, 10))
        if value >= hi - 1e-9:
            return ticks
        k += 1


def axis_format(prefix: str = "", suffix: str = "", factor: float = 1.0) -> Callable[[float, float], str]:
    """Tick labels with as many decimals as the step needs: 0, 0.5, 1.0 / $0.001, $0.002."""

    def label(value: float, step: float) -> str:
        scaled = step * factor
        decimals = max(0, -math.floor(math.log10(scaled) + 1e-9)) if scaled > 0 else 0
        if scaled > 0 and round(scaled, decimals) != round(scaled, decimals + 3):
            decimals += 1  # a 2.5 step needs one more digit than a 2 step
        return f"{prefix}{value * factor:,.{decimals}f}{suffix}"

    return label


def num(value: float) -> str:
    """An SVG coordinate: one decimal, no trailing zeros (keeps a year of points small)."""
    text = "%.1f" % value  # noqa: UP031 - the fastest float formatting, and this runs a million times
    if text[-2:] == ".0":
        text = text[:-2]
    return "0" if text == "-0" else text


def line_path(points: Sequence[tuple[float, float] | None]) -> str:
    """`M x y L x y ...`, a new subpath after each gap (None). An isolated point becomes a
    zero-length subpath, which a round line cap draws as a dot."""
    parts: list[str] = []
    run: list[tuple[float, float]] = []

    def flush() -> None:
        if len(run) == 1:
            parts.append(f"M{num(run[0][0])} {num(run[0][1])}h0")
        elif run:
            parts.append("M" + "L".join(f"{num(x)} {num(y)}" for x, y in run))
        run.clear()

    for point in points:
        if point is None:
            flush()
        else:
            run.append(point)
    flush()
    return "".join(parts)


def path_vertices(d: str) -> int:
    """How many vertices a path from `line_path` has (tests and the browser check count them)."""
    return d.count("M") + d.count("L")


def band_polygons(
    xs: Sequence[float], bands: Sequence[tuple[float, float] | None], half_width: float
) -> list[list[tuple[float, float]]]:
    """One polygon per run of days with a band: along the upper edge, back along the lower.
    `bands` holds (y of the low value, y of the high value); a one-day run is drawn as a bar
    `half_width` either side of its day, so it stays visible."""
    polygons: list[list[tuple[float, float]]] = []
    run: list[tuple[float, float, float]] = []

    def flush() -> None:
        if len(run) == 1:
            x, low, high = run[0]
            polygons.append(
                [(x - half_width, high), (x + half_width, high), (x + half_width, low), (x - half_width, low)]
            )
        elif run:
            polygons.append([(x, high) for x, _, high in run] + [(x, low) for x, low, _ in reversed(run)])
        run.clear()

    for x, band in zip(xs, bands, strict=True):
        if band is None:
            flush()
        else:
            run.append((x, band[0], band[1]))
    flush()
    return polygons


def polygon_points(polygon: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{num(x)},{num(y)}" for x, y in polygon)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def day_label(day: date) -> str:
    return f"{_MONTHS[day.month - 1]} {day.day}"


def date_ticks(days: Sequence[date], max_ticks: int = 7) -> list[tuple[int, str]]:
    """(index, label) of readable date ticks: month starts for long ranges, else every k days."""
    n = len(days)
    if n == 0:
        return []
    if n > 62:
        starts = [i for i, d in enumerate(days) if d.day == 1]
        every = math.ceil(len(starts) / max_ticks) if starts else 1
        return [
            (
                i,
                f"{_MONTHS[days[i].month - 1]} {days[i].year}"
                if days[i].month == 1 or i == starts[0]
                else _MONTHS[days[i].month - 1],
            )
            for i in starts[::every]
        ]
    for step in (1, 2, 7, 14, 28):
        if math.ceil(n / step) <= max_ticks:
            break
    first = n - 1 - ((n - 1) // step) * step  # so the newest day always gets a tick
    return [(i, day_label(days[i])) for i in range(first, n, step)]


# --------------------------------------------------------------------------- time charts


@dataclass(frozen=True)
class Tick:
    at: float
    label: str
    anchor: str = "middle"  # text-anchor: an x label near an edge grows inwards, never off the chart


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    title: str


@dataclass(frozen=True)
class Series:
    """One plotted measure: a line with a point per day that has a value."""

    key: str  # css class: colour, dash and point shape
    label: str
    d: str
    dots: list[Dot]
    shape: str  # circle | square | diamond | none (a line without points)


@dataclass(frozen=True)
class Span:
    """A whole day's column: `no_data` or `outage`."""

    x: float
    width: float
    kind: str
    title: str


@dataclass(frozen=True)
class Marker:
    """A vertical line where something changed: `served`, `fingerprint` or `content`."""

    x: float
    kind: str
    letter: str
    title: str


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    y_label: str
    series: list[Series]
    band: list[str] = field(default_factory=list)  # polygon point lists
    band_label: str = ""
    spans: list[Span] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    alarms: list[Dot] = field(default_factory=list)
    summary: str = ""  # a sentence for screen readers

    @property
    def n_points(self) -> int:
        return sum(len(s.dots) for s in self.series)


@dataclass(frozen=True)
class SeriesSpec:
    key: str
    label: str
    values: Sequence[float | None]
    shape: str = "circle"  # circle | square | diamond | none
    titles: Sequence[str] | None = None


@dataclass(frozen=True)
class Frame:
    width: int = 720
    height: int = 250
    left: float = 56
    right: float = 14
    top: float = 24
    bottom: float = 30

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y_top(self) -> float:
        return self.top

    @property
    def y_bottom(self) -> float:
        return self.height - self.bottom


def _anchor(x: float, frame: Frame, room: float = 40.0) -> str:
    """The left margin holds half a label; the right one does not."""
    return "end" if x > frame.x1 - room else "middle"


def day_scale(n_days: int, frame: Frame) -> tuple[Scale, float]:
    """x of day i is the middle of its column; returns the scale and the column width."""
    step = (frame.x1 - frame.x0) / max(n_days, 1)
    return Scale(
        0, max(n_days - 1, 0), frame.x0 + step / 2, frame.x0 + step / 2 + step * max(n_days - 1, 0)
    ), step


def time_chart(
    chart_id: str,
    title: str,
    days: Sequence[date],
    series: Sequence[SeriesSpec],
    *,
    y_format: Callable[[float, float], str],  # (tick value, tick step) -> label
    y_label: str,
    y_max: float | None = None,
    band: Sequence[Band] | None = None,
    band_label: str = "",
    spans: Sequence[tuple[int, str, str]] = (),
    markers: Sequence[tuple[int, str, str, str]] = (),
    alarms: Sequence[tuple[int, str]] = (),
    frame: Frame = Frame(),
) -> Chart:
    """A daily chart. y runs from 0 (counts, rates and times start at zero, so a change is
    never exaggerated) to `y_max` or a round number above the largest value."""
    xs_scale, column = day_scale(len(days), frame)
    xs = [xs_scale(i) for i in range(len(days))]
    top = y_max
    if top is None:
        values = [v for s in series for v in s.values if v is not None]
        top = nice_ticks(0.0, max(values) if values and max(values) > 0 else 1.0)[-1]
    y = Scale(0.0, top, frame.y_bottom, frame.y_top)
    y0, ky = frame.y_bottom, (frame.y_top - frame.y_bottom) / top  # y(v) inlined: the hot loop below
    values_at = nice_ticks(0.0, top)
    step = values_at[1] - values_at[0] if len(values_at) > 1 else top
    y_ticks = [Tick(y(v), y_format(v, step)) for v in values_at]
    plotted: list[Series] = []
    for spec in series:
        points = [None if v is None else (xs[i], y0 + v * ky) for i, v in enumerate(spec.values)]
        titles = spec.titles or [""] * len(days)
        dots = (
            []
            if spec.shape == "none"
            else [Dot(p[0], p[1], titles[i]) for i, p in enumerate(points) if p is not None]
        )
        plotted.append(Series(spec.key, spec.label, line_path(points), dots, spec.shape))
    polygons: list[str] = []
    if band is not None:
        ybands = [None if b is None else (y(b[0]), y(b[1])) for b in band]
        polygons = [polygon_points(p) for p in band_polygons(xs, ybands, column / 2)]
    # An alarm sits just above the first series' point of its day (the pass rate).
    anchor = series[0].values if series else [None] * len(days)
    alarm_dots = [
        Dot(xs[i], (frame.y_bottom if anchor[i] is None else y(anchor[i])) - 10, text) for i, text in alarms
    ]
    return Chart(
        id=chart_id,
        title=title,
        width=frame.width,
        height=frame.height,
        left=frame.x0,
        right=frame.x1,
        top=frame.y_top,
        bottom=frame.y_bottom,
        x_ticks=[Tick(xs[i], label, _anchor(xs[i], frame)) for i, label in date_ticks(days)],
        y_ticks=y_ticks,
        y_label=y_label,
        series=plotted,
        band=polygons,
        band_label=band_label,
        spans=[Span(xs[i] - column / 2, column, kind, text) for i, kind, text in spans],
        markers=[Marker(xs[i] - column / 2, kind, letter, text) for i, kind, letter, text in markers],
        alarms=alarm_dots,
        summary=f"{title}: {sum(len(s.dots) for s in plotted)} days with data of {len(days)}",
    )


# --------------------------------------------------------------------------- sparklines


@dataclass(frozen=True)
class Spark:
    width: int
    height: int
    d: str
    band: list[str]
    last: tuple[float, float] | None
    n_points: int
    title: str


def sparkline(
    values: Sequence[float | None],
    band: Sequence[Band] | None = None,
    *,
    title: str = "",
    width: int = 120,
    height: int = 30,
    y_max: float = 1.0,
) -> Spark:
    """A small trend line (pass rate 0..1 by default) with its band and the newest point."""
    pad = 3.0
    step = (width - 2 * pad) / max(len(values), 1)
    x = Scale(0, max(len(values) - 1, 0), pad + step / 2, pad + step / 2 + step * max(len(values) - 1, 0))
    y = Scale(0.0, y_max, height - pad, pad)
    points = [None if v is None else (x(i), y(v)) for i, v in enumerate(values)]
    polygons: list[str] = []
    if band is not None:
        xs = [x(i) for i in range(len(values))]
        ybands = [None if b is None else (y(b[0]), y(b[1])) for b in band]
        polygons = [polygon_points(p) for p in band_polygons(xs, ybands, step / 2)]
    last = next((p for p in reversed(points) if p is not None), None)
    return Spark(width, height, line_path(points), polygons, last, sum(p is not None for p in points), title)
