"""The static HTML report: chart geometry, the numbers it shows, and the folder it writes.

Stores are real (SQLite files, and PostgreSQL for the SQL-side aggregation) and filled with
SampleResults through Store.save_sample; pages are parsed with the stdlib HTML parser."""

from __future__ import annotations

import random
import re
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from canary.config.load import Project, load_project
from canary.detect import evaluate
from canary.errors import SetupError
from canary.records import SampleResult, ScoreRecord, ToolCall, TurnRecord
from canary.report import charts, paths, write_report
from canary.report.build import build_site, lookback_days
from canary.report.charts import SeriesSpec
from canary.report.compare import wilson
from canary.report.data import DayAgg
from canary.report.series import active_counts, build_days, day_range
from canary.store import Store
from canary.store import alerting as db
from tests.projects import write_project

TODAY = date(2025, 3, 31)
T0 = datetime(2025, 3, 31, 6, 0, tzinfo=UTC)
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
EVIL = f"Sure! {SCRIPT} {IMG}"
REPORT_URL = "https://canary.example.com/report/"
CSP_HEADER = "Content-Security-Policy"

CONFIG = f"""\
store: sqlite:///canary.db
models:
  - id: alpha
    provider: sim
    model: alpha-large
    price: {{input_per_mtok: 1, output_per_mtok: 2}}
  - id: beta
    provider: sim
    protocol: openai
    model: beta-large
    retires: 2025-04-09
  - id: team/opus:v1
    provider: sim
    model: opus
alerts:
  log: false
  report_url: {REPORT_URL}
"""

CANARIES = {
    "capital.yaml": """\
        id: capital
        description: Knows a capital city.
        prompt: What is the capital of France?
        scorers:
          - contains: {any: [Paris]}
        """,
    "steps.yaml": """\
        id: steps
        kind: multi_turn
        system: Answer in lowercase only.
        turns:
          - user: Name a colour.
          - user: Name another.
        scorers:
          - regex: {pattern: '^[a-z ]+$'}
        """,
    "weather.yaml": """\
        id: weather
        kind: tool_call
        prompt: What's the weather in Paris?
        tools:
          - name: get_weather
            parameters: {type: object, properties: {city: {type: string}}, required: [city]}
        tool_results:
          get_weather: {temperature: 18}
        scorers:
          - tool_call: {name: get_weather, args: {city: Paris}}
        """,
}


def make_project(root: Path, config: str = CONFIG) -> Project:
    canaries = {name: textwrap.dedent(text) for name, text in CANARIES.items()}
    return load_project(write_project(root, config, canaries))


def hashes(project: Project) -> dict[str, str]:
    return {c.id: c.hash for c in project.canaries}


def sample(
    day: date,
    model: str,
    canary: str,
    chash: str,
    index: int,
    outcome: str,
    *,
    tokens: int = 10,
    cost: float | None = None,
    latency: float = 1.0,
    reply: str = "Paris",
    served: str | None = None,
    fingerprint: str | None = None,
    turns: list[TurnRecord] | None = None,
    reason: str = "",
) -> SampleResult:
    passed = outcome == "pass"
    if turns is None and outcome in ("pass", "fail"):
        turns = [
            TurnRecord(
                1,
                "What is the capital of France?",
                reply,
                scores=[
                    ScoreRecord(
                        "contains", passed, 1.0 if passed else 0.0, "found Paris" if passed else "no Paris"
                    )
                ],
            )
        ]
    return SampleResult(
        day=day,
        model_id=model,
        canary_id=canary,
        canary_hash=chash,
        sample_index=index,
        outcome=outcome,  # type: ignore[arg-type]
        started_at=T0,
        finished_at=T0 + timedelta(seconds=index),
        score=(1.0 if passed else 0.0) if outcome in ("pass", "fail") else None,
        reason=reason or ("" if passed else "contains: no Paris"),
        failed_turn=None if passed or outcome not in ("pass", "fail") else 1,
        turns=turns or [],
        output_tokens=tokens if outcome in ("pass", "fail") else 0,
        input_tokens=5,
        cost_usd=cost,
        latency_s=latency if outcome in ("pass", "fail") else 0.0,
        served_model=served or model if outcome in ("pass", "fail") else None,
        fingerprint=fingerprint,
    )


def save(store: Store, items: list[SampleResult]) -> None:
    run_id = store.start_run(day=TODAY, model_ids=sorted({s.model_id for s in items}), n_planned=len(items))
    for s in items:
        assert store.save_sample(run_id, s)
    store.finish_run(run_id, status="finished", n_done=len(items))


# --------------------------------------------------------------------------- chart geometry


def test_scale_maps_the_domain_onto_the_range_and_survives_a_point_domain():
    y = charts.Scale(0.0, 1.0, 200.0, 20.0)
    assert (y(0.0), y(1.0), y(0.5)) == (200.0, 20.0, 110.0)
    assert charts.Scale(3.0, 3.0, 0.0, 10.0)(3.0) == 5.0


def test_nice_ticks_cover_the_data_with_round_steps():
    assert charts.nice_ticks(0.0, 1.0) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert charts.nice_ticks(0.0, 73.0) == [0.0, 20.0, 40.0, 60.0, 80.0]
    assert charts.nice_ticks(0.0, 0.0037) == [0.0, 0.001, 0.002, 0.003, 0.004]
    assert charts.nice_ticks(0.0, 0.0)[-1] > 0  # an all-zero series still gets an axis


def test_axis_labels_carry_the_decimals_the_step_needs():
    dollars = charts.axis_format(prefix="$")
    assert [dollars(v, 0.001) for v in (0.0, 0.002)] == ["$0.000", "$0.002"]
    percent = charts.axis_format(suffix="%", factor=100.0)
    assert [percent(v, 0.25) for v in (0.0, 0.25, 1.0)] == ["0%", "25%", "100%"]
    assert charts.axis_format(suffix=" s")(2.5, 2.5) == "2.5 s"


def test_line_path_breaks_at_missing_days_instead_of_bridging_them():
    d = charts.line_path([(0, 10), (5, 20), None, None, (20, 5), (25, 5.25), None, (40, 1)])
    assert d == "M0 10L5 20M20 5L25 5.2M40 1h0"  # an isolated day is a dot, not nothing
    assert charts.path_vertices(d) == 5
    assert charts.line_path([None, None]) == ""


def test_band_polygons_run_between_gaps_and_a_lone_day_is_a_bar():
    polys = charts.band_polygons([0, 10, 20, 30, 40], [(90, 10), (80, 20), (70, 30), None, (60, 40)], 4)
    assert polys == [
        [(0, 10), (10, 20), (20, 30), (20, 70), (10, 80), (0, 90)],
        [(36, 40), (44, 40), (44, 60), (36, 60)],
    ]
    assert charts.polygon_points(polys[1]) == "36,40 44,40 44,60 36,60"


def test_time_chart_points_gaps_band_and_spans():
    days = day_range(date(2025, 3, 1), date(2025, 3, 10))
    rates = [1.0, 0.8, None, 0.6, 0.4, None, None, 1.0, 0.9, 0.0]
    band = [None, None, (0.5, 1.0), (0.5, 1.0), (0.4, 0.9), None, None, None, (0.6, 1.0), (0.6, 1.0)]
    chart = charts.time_chart(
        "rate",
        "Pass rate",
        days,
        [SeriesSpec("rate", "daily pass rate", rates)],
        y_format=charts.axis_format(suffix="%", factor=100.0),
        y_label="pass rate",
        y_max=1.0,
        band=band,
        spans=[(2, "no_data", "no data"), (5, "outage", "outage")],
        markers=[(7, "served", "S", "changed")],
        alarms=[(9, "alarm")],
    )
    frame = charts.Frame()
    step = (frame.x1 - frame.x0) / 10
    (line,) = chart.series
    assert chart.n_points == len(line.dots) == 7
    assert charts.path_vertices(line.d) == 7 and line.d.count("M") == 3  # three runs of days
    xs = [dot.x for dot in line.dots]
    assert xs[0] == pytest.approx(frame.x0 + step / 2) and xs[-1] == pytest.approx(frame.x1 - step / 2)
    assert line.dots[0].y == pytest.approx(frame.y_top) and line.dots[-1].y == pytest.approx(frame.y_bottom)
    assert len(chart.band) == 2  # days 3-5 and days 9-10
    assert [t.label for t in chart.y_ticks] == ["0%", "25%", "50%", "75%", "100%"]
    assert [(s.kind, round(s.width, 6)) for s in chart.spans] == [
        ("no_data", round(step, 6)),
        ("outage", round(step, 6)),
    ]
    assert chart.spans[0].x == pytest.approx(frame.x0 + 2 * step)
    assert chart.markers[0].x == pytest.approx(frame.x0 + 7 * step)
    assert chart.alarms[0].y == pytest.approx(frame.y_bottom - 10)  # above the 0 % point it marks


def test_time_chart_scales_to_a_round_number_above_the_largest_value_and_draws_no_dots_for_lines():
    days = day_range(date(2025, 3, 1), date(2025, 3, 4))
    chart = charts.time_chart(
        "t",
        "Tokens",
        days,
        [SeriesSpec("tokens", "t", [None, 130.0, 170.0, None]), SeriesSpec("mean", "m", [150.0] * 4, "none")],
        y_format=charts.axis_format(),
        y_label="tokens",
    )
    assert [t.label for t in chart.y_ticks] == ["0", "50", "100", "150", "200"]
    assert chart.n_points == 2


def test_date_ticks_use_month_starts_for_long_ranges_and_always_label_the_newest_day():
    long = day_range(date(2024, 11, 15), date(2025, 3, 31))
    ticks = charts.date_ticks(long)
    assert [label for _, label in ticks] == ["Dec 2024", "Jan 2025", "Feb", "Mar"]
    short = day_range(date(2025, 3, 1), date(2025, 3, 20))
    ticks = charts.date_ticks(short)
    assert ticks[-1] == (19, "Mar 20") and len(ticks) <= 7


def test_sparkline_counts_days_with_data():
    spark = charts.sparkline([0.9, None, 1.0, 0.5], [None, None, (0.8, 1.0), (0.8, 1.0)])
    assert spark.n_points == 3 and len(spark.band) == 1 and spark.last is not None
    assert charts.sparkline([None, None]).last is None


def test_page_names_are_safe_and_distinct():
    assert paths.slug("alpha-1.5") == "alpha-1.5"
    odd = [paths.slug(x) for x in ("team/opus:v1", "team_opus_v1", "Alpha", "alpha")]
    assert len(set(odd)) == 4 and all(re.fullmatch(r"[a-z0-9._-]+", s) for s in odd)
    assert paths.link("canary/a/b.html", "alerts.html#alert-1") == "../../alerts.html#alert-1"
    assert paths.link("index.html", "model/a.html") == "model/a.html"


# --------------------------------------------------------------------------- series and detection


def counts(passes: int, scored: int, unavailable: int = 0) -> DayAgg:
    return DayAgg(passes=passes, scored=scored, unavailable=unavailable)


def test_day_views_match_the_detectors_day_by_day(tmp_path):
    """The band is exactly the sigma rule's and the alarm exactly the paging rule's, as
    `evaluate` judges each day on its own history."""
    cfg = make_project(tmp_path).config.detect
    start = date(2025, 1, 1)
    all_days = day_range(start, TODAY)
    series = {}
    for i, d in enumerate(all_days):
        if i % 11 == 5:
            continue  # no data
        passes = 1 if i >= len(all_days) - 6 else (5 if i % 4 else 4)
        series[d] = counts(passes, 5)
    window = all_days[-30:]
    views = build_days({"h1": series}, window, start, cfg, 0.2)
    for view in views:
        history = [
            (d, series[d].passes, series[d].scored) if d in series else (d, 0, 0)
            for d in all_days
            if d < view.day
        ]
        today = (series[view.day].passes, 5) if view.day in series else (0, 0)
        sigma = evaluate(history, today, cfg, rule="sigma")
        paging = evaluate(history, today, cfg)
        if view.counts is None:
            assert view.state == "no_data" and view.rate is None and not view.alarm
            continue
        assert view.band == pytest.approx(sigma.band)
        assert view.mean == pytest.approx(sigma.baseline)
        assert view.alarm == paging.alarm
    assert any(v.alarm for v in views)  # the drop at the end is caught


def test_the_report_reads_just_enough_history_to_judge_like_a_full_history(tmp_path):
    cfg = make_project(tmp_path).config.detect
    rng = random.Random(5)
    all_days = day_range(date(2024, 1, 1), TODAY)
    series = {
        d: counts(rng.choice((3, 4, 5, 5, 5, 5)) if i < len(all_days) - 20 else rng.choice((1, 2, 5)), 5)
        for i, d in enumerate(all_days)
        if rng.random() > 0.15
    }
    window = all_days[-90:]
    short = build_days({"h": series}, window, window[0] - timedelta(days=lookback_days(cfg)), cfg, 0.2)
    full = build_days({"h": series}, window, all_days[0], cfg, 0.2)
    assert [(v.alarm, v.band) for v in short] == [(v.alarm, v.band) for v in full]
    assert any(v.alarm for v in full)


def test_an_edited_canary_starts_a_new_series_and_outage_days_do_not_alarm(tmp_path):
    cfg = make_project(tmp_path).config.detect
    old = {date(2025, 3, d): counts(5, 5) for d in range(1, 21)}
    new = {date(2025, 3, d): counts(1, 5) for d in range(20, 31)}
    new[date(2025, 3, 25)] = counts(0, 1, unavailable=4)
    active = active_counts({"old": old, "new": new})
    assert active[date(2025, 3, 20)][0] == "new"  # the edit day reads the new content
    views = build_days(
        {"old": old, "new": new}, day_range(date(2025, 3, 15), date(2025, 3, 31)), date(2025, 1, 1), cfg, 0.2
    )
    by_day = {v.day: v for v in views}
    assert by_day[date(2025, 3, 19)].hash == "old" and by_day[date(2025, 3, 21)].hash == "new"
    # 1/5 for days after a perfect history would alarm; the new content has no baseline of its own
    assert not any(v.alarm for v in views)
    assert by_day[date(2025, 3, 20)].band is None  # a new series has no band until min_history days
    assert by_day[date(2025, 3, 25)].state == "outage" and by_day[date(2025, 3, 31)].state == "no_data"


# --------------------------------------------------------------------------- comparison numbers


def test_comparison_numbers_match_hand_computed_values(store_url, tmp_path):
    project = make_project(tmp_path)
    h = hashes(project)
    d0, d1 = TODAY, TODAY - timedelta(days=1)
    rows = []
    # alpha on capital: 5 passes of 8 scored, 1 unavailable; latencies 1..8 s; pass 10 tokens, fail 30
    outcomes = [
        (d0, "pass"),
        (d0, "pass"),
        (d0, "pass"),
        (d0, "fail"),
        (d1, "pass"),
        (d1, "pass"),
        (d1, "fail"),
        (d1, "fail"),
    ]
    for i, (day, outcome) in enumerate(outcomes):
        rows.append(
            sample(
                day,
                "alpha",
                "capital",
                h["capital"],
                i,
                outcome,
                tokens=10 if outcome == "pass" else 30,
                cost=0.01,
                latency=float(i + 1),
            )
        )
    rows.append(sample(d1, "alpha", "capital", h["capital"], 8, "unavailable"))
    # beta on capital: 4/4, 20 tokens each, 0.5 s
    rows += [sample(d0, "beta", "capital", h["capital"], i, "pass", tokens=20, latency=0.5) for i in range(4)]
    # not compared: an old content hash, a day before the 14-day window, a canary only alpha answered
    rows += [
        sample(d0 - timedelta(days=2), "alpha", "capital", "0ldc0ntent", i, "fail", cost=9.0)
        for i in range(3)
    ]
    rows += [sample(d0 - timedelta(days=14), "beta", "capital", h["capital"], i, "fail") for i in range(3)]
    rows += [sample(d0, "alpha", "steps", h["steps"], i, "fail", latency=99.0) for i in range(2)]
    with Store.open(store_url, migrate=True) as store:
        save(store, rows)
        site = build_site(project, store, days=30, model_ids=(), today=TODAY)
        index = write_report(project, store, out=tmp_path / "out", days=30, today=TODAY)

    cmp = site.comparison
    assert (cmp.start, cmp.end) == (TODAY - timedelta(days=13), TODAY)
    assert cmp.models == ["alpha", "beta"] and [r.canary_id for r in cmp.rows] == ["capital"]
    row = cmp.rows[0]
    assert (row.cells["alpha"].passes, row.cells["alpha"].scored) == (5, 8)
    assert row.cells["alpha"].tokens == pytest.approx((5 * 10 + 3 * 30) / 8)
    assert row.best == "beta" and row.lower == frozenset()  # 5/8 vs 4/4 is within sampling noise
    alpha, beta = cmp.columns["alpha"], cmp.columns["beta"]
    assert alpha.rate == pytest.approx(5 / 8) and beta.rate == 1.0
    assert alpha.availability == pytest.approx(8 / 9) and beta.availability == 1.0
    assert alpha.cost_per_correct == pytest.approx(8 * 0.01 / 5)
    assert beta.cost_per_correct is None  # no price
    assert alpha.tokens == pytest.approx(17.5) and beta.tokens == 20
    # nearest-rank percentiles over 1..8 s: p50 = 4th value, p95 = 8th
    assert (alpha.latency.p50, alpha.latency.p95, alpha.latency.n) == (4.0, 8.0, 8)
    assert (beta.latency.p50, beta.latency.p95) == (0.5, 0.5)
    assert alpha.interval == pytest.approx(wilson(5, 8))
    lo, hi = wilson(5, 8)
    assert lo == pytest.approx(0.3057, abs=1e-4) and hi == pytest.approx(0.8632, abs=1e-4)

    # the overview reads the newest day over all canaries: capital 3/4 and steps 0/2 today;
    # latencies 1, 2, 3, 4, 99, 99 s: p50 = 3rd value, p95 = 6th
    alpha_page = next(m for m in site.models if m.model.id == "alpha")
    latest = alpha_page.latest
    assert latest.day == TODAY and latest.rate == 0.5
    assert (latest.latency.p50, latest.latency.p95) == (3.0, 99.0)
    assert latest.cost_per_correct == pytest.approx(4 * 0.01 / 3)

    html = (index.parent / "compare.html").read_text(encoding="utf-8")
    assert cell(html, "alpha", "rate").startswith("62.5%")
    assert cell(html, "alpha", "cost") == "$0.0160"
    assert cell(html, "alpha", "tokens") == "17.5"
    assert cell(html, "alpha", "p95") == "8.00 s"
    assert cell(html, "beta", "availability") == "100%"


def cell(html: str, model: str, measure: str) -> str:
    match = re.search(rf'data-model="{re.escape(model)}" data-measure="{measure}">(.*?)</td>', html, re.S)
    assert match, (model, measure)
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


# --------------------------------------------------------------------------- the written folder


@dataclass
class Case:
    project: Project
    out: Path
    index: Path
    rate_points: int  # days with scored data on alpha x capital's pass-rate chart
    alert_ids: list[str] = field(default_factory=list)


def build_case(root: Path) -> Case:
    """A 30-day store with an edit, an outage, a no-data day, a served-model change, alerts, and
    hostile model output in every place a model or vendor controls; the report written from it."""
    project = make_project(root)
    h = hashes(project)
    window = day_range(TODAY - timedelta(days=29), TODAY)
    rows: list[SampleResult] = []
    rate_days = 0
    for n, day in enumerate(window):
        if n == 12:
            continue  # a day without any run
        served = "alpha-2025" if n >= 25 else "alpha"
        for i in range(5):
            outage = n == 8 and i < 4
            outcome = (
                "unavailable"
                if outage
                else ("fail" if (n >= 26 and i < 3) or (n % 9 == 4 and i == 0) else "pass")
            )
            chash = h["capital"] if n >= 5 else "0ldc0ntent"
            reply = EVIL if outcome == "fail" else "Paris"
            rows.append(
                sample(
                    day,
                    "alpha",
                    "capital",
                    chash,
                    i,
                    outcome,
                    cost=0.001,
                    latency=0.5 + i / 10,
                    reply=reply,
                    served=served,
                    reason=f"contains: no Paris in {SCRIPT}",
                )
            )
            rows.append(
                sample(
                    day,
                    "beta",
                    "capital",
                    h["capital"],
                    i,
                    "pass",
                    tokens=12,
                    latency=0.3,
                    served=f"beta {IMG}",
                    fingerprint="fp_1" if n < 20 else "fp_2",
                )
            )
        rate_days += 1
        steps = [
            TurnRecord(1, "Name a colour.", "blue", scores=[ScoreRecord("regex", True, 1.0, "matched")]),
            TurnRecord(
                2, "Name another.", EVIL, scores=[ScoreRecord("regex", False, 0.0, f"no match: {IMG}")]
            ),
        ]
        rows.append(
            sample(day, "alpha", "steps", h["steps"], 0, "fail", turns=steps, reason=f"turn 2: {SCRIPT}")
        )
        rows[-1].failed_turn = 2
        call = ToolCall("call_1", "get_weather", None, f'{{"city": "{SCRIPT}"')
        weather = [
            TurnRecord(
                1,
                "What's the weather in Paris?",
                "",
                tool_calls=[call],
                scores=[ScoreRecord("tool_call", False, 0.0, "arguments are not JSON")],
            )
        ]
        rows.append(sample(day, "alpha", "weather", h["weather"], 0, "fail", turns=weather))
    store = Store.open(f"sqlite:///{root / 'canary.db'}", migrate=True)
    with store:
        save(store, rows)
        ids = []
        with store.writing() as conn:
            at = T0 - timedelta(days=3)
            firing = db.new_alert(
                conn,
                ("alpha", "capital", "quality"),
                now=at,
                day=TODAY - timedelta(days=3),
                summary=f"alpha pass rate on capital: 40% {SCRIPT}",
                today="40% (2/5)",
                baseline="98% baseline",
                detail=f"CUSUM {IMG}",
            )
            db.add_event(
                conn, firing, at=at, day=TODAY - timedelta(days=3), event="opened", detail="40% (2/5)"
            )
            db.add_event(conn, firing, at=at, day=TODAY - timedelta(days=3), event="notified", detail="log")
            db.add_event(
                conn, firing, at=at + timedelta(days=1), day=TODAY - timedelta(days=2), event="repeated"
            )
            gone = db.new_alert(
                conn,
                ("beta", "*", "availability"),
                now=at - timedelta(days=9),
                day=TODAY - timedelta(days=12),
                summary="beta availability: 80% unavailable",
                today=None,
                baseline=None,
                detail="",
            )
            db.add_event(
                conn, gone, at=at - timedelta(days=9), day=TODAY - timedelta(days=12), event="opened"
            )
            db.add_event(
                conn,
                gone,
                at=at - timedelta(days=9),
                day=TODAY - timedelta(days=12),
                event="silenced",
                detail="maintenance window",
            )
            db.add_event(
                conn, gone, at=at - timedelta(days=8), day=TODAY - timedelta(days=11), event="resolved"
            )
            db.update_alert(
                conn,
                gone,
                state="resolved",
                resolved_at=at - timedelta(days=8),
                resolved_day=TODAY - timedelta(days=11),
            )
            ids = [firing, gone]
        index = write_report(project, store, out=root / "report", days=30, today=TODAY)
    return Case(project, root / "report", index, rate_days, ids)


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> Case:
    return build_case(tmp_path_factory.mktemp("report"))


class Page(HTMLParser):
    """Every tag, attribute and id of one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if dict(attrs).get("id"):
            self.ids.add(dict(attrs)["id"])

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def pages_of(case: Case) -> list[Path]:
    return sorted(case.out.rglob("*.html"))


def test_every_page_is_written(case):
    written = {p.relative_to(case.out).as_posix() for p in pages_of(case)}
    models = [m.id for m in case.project.config.models]
    expected = {"index.html", "compare.html", "alerts.html"}
    expected |= {paths.model_page(m) for m in models}
    expected |= {paths.canary_page(m, c.id) for m in models for c in case.project.canaries}
    assert written == expected
    assert "canary/team_opus_v1-" in " ".join(written)  # an id with / and : gets a safe file name


def test_links_resolve_inside_the_folder(case):
    parsed = {p: parse(p) for p in pages_of(case)}
    checked = 0
    for path, page in parsed.items():
        for tag, attrs in page.tags:
            href = attrs.get("href")
            if tag != "a" or href is None or href == REPORT_URL:
                continue
            assert not re.match(r"^[a-z]+:", href) and not href.startswith("/"), (path, href)
            target, _, fragment = href.partition("#")
            resolved = (path.parent / target).resolve() if target else path
            assert resolved.is_file() and resolved.is_relative_to(case.out.resolve()), (path, href)
            if fragment:
                assert fragment in parsed[resolved].ids, (path, href)
            checked += 1
    assert checked > 50


def test_no_page_references_the_network_except_the_report_url(case):
    for path in pages_of(case):
        html = path.read_text(encoding="utf-8")
        found = [u for u in re.findall(r"(?:https?:)?//[^\s\"'<>)]+", html) if not u.startswith(REPORT_URL)]
        assert found == [], path
        for tag, attrs in parse(path).tags:
            assert tag not in ("script", "iframe", "object", "embed", "img", "link") or (
                tag == "link" and attrs == {"rel": "icon", "href": "data:,"}
            ), (path, tag, attrs)
        (csp,) = [
            a["content"] for t, a in parse(path).tags if t == "meta" and a.get("http-equiv") == CSP_HEADER
        ]
        assert csp.startswith("default-src 'none'; style-src 'unsafe-inline'; img-src data:;"), path
    assert f'href="{REPORT_URL}"' in case.index.read_text(encoding="utf-8")


def test_hostile_model_output_is_escaped_everywhere(case):
    seen = 0
    for path in pages_of(case):
        html = path.read_text(encoding="utf-8")
        assert "<script" not in html.lower() and "<img" not in html.lower(), path
        for tag, attrs in parse(path).tags:
            assert not [a for a in attrs if a.startswith("on")], (path, tag, attrs)
        seen += html.count("&lt;script&gt;alert(1)&lt;/script&gt;") + html.count(
            "&lt;img src=x onerror=alert(1)&gt;"
        )
    transcript = (case.out / paths.canary_page("alpha", "capital")).read_text(encoding="utf-8")
    assert "Sure! &lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt;" in transcript
    assert seen > 10


def test_the_canary_page_shows_the_chart_markers_and_failing_transcripts(case):
    page_path = case.out / paths.canary_page("alpha", "capital")
    page = parse(page_path)
    html = page_path.read_text(encoding="utf-8")
    svgs = [attrs for tag, attrs in page.tags if tag == "svg" and attrs.get("data-chart") == "rate"]
    assert svgs and svgs[0]["data-points"] == str(case.rate_points)
    classes = [attrs.get("class", "") for _, attrs in page.tags]
    assert classes.count("span no_data") == 3  # one per chart: the day nothing ran
    assert classes.count("span outage") == 3
    assert "marker served" in classes and "marker content" in classes
    assert html.count('class="transcript"') == 3

    steps = (case.out / paths.canary_page("alpha", "steps")).read_text(encoding="utf-8")
    assert steps.count('class="msg assistant failed"') == 3  # turn 2 of each shown sample
    assert "Answer in lowercase only." in steps  # the system prompt opens the conversation
    weather = (case.out / paths.canary_page("alpha", "weather")).read_text(encoding="utf-8")
    assert "get_weather" in weather and "arguments are not a JSON object" in weather
    assert "{&#34;city&#34;: &#34;&lt;script&gt;" in weather  # raw arguments, escaped


def test_overview_puts_firing_models_first_with_their_numbers(case):
    page = parse(case.index)
    rows = [(a["data-model"], a["data-status"]) for tag, a in page.tags if tag == "tr" and "data-model" in a]
    assert rows[0] == ("alpha", "firing")
    assert {m for m, _ in rows} == {"alpha", "beta", "team/opus:v1"}
    assert rows[-1] == ("team/opus:v1", "no_data")
    text = " ".join(page.text)
    assert "in 9 days" in text  # beta retires on 2025-04-09


def test_alerts_page_shows_each_lifecycle(case):
    page = parse(case.out / "alerts.html")
    assert {f"alert-{i}" for i in case.alert_ids} <= page.ids
    text = " ".join(" ".join(page.text).split())
    for event in ("opened", "notified", "repeated", "silenced", "resolved"):
        assert event in text
    assert "Firing (1)" in text and "Resolved (1)" in text and "maintenance window" in text


def test_unknown_model_is_a_setup_error_and_an_empty_store_still_writes_every_page(tmp_path):
    project = make_project(tmp_path)
    with Store.open(f"sqlite:///{tmp_path / 'empty.db'}", migrate=True) as store:
        with pytest.raises(SetupError, match="nope"):
            write_report(project, store, out=tmp_path / "r", model_ids=["nope"], today=TODAY)
        index = write_report(project, store, out=tmp_path / "r", model_ids=["beta"], today=TODAY)
    assert (tmp_path / "r" / paths.canary_page("beta", "weather")).is_file()
    assert not (tmp_path / "r" / paths.model_page("alpha")).exists()
    assert "no data" in index.read_text(encoding="utf-8")
    assert "nothing to compare" in (tmp_path / "r" / "compare.html").read_text(encoding="utf-8")


def test_a_rerun_removes_only_the_pages_it_no_longer_writes(tmp_path):
    project = make_project(tmp_path)
    out = tmp_path / "r"
    with Store.open(f"sqlite:///{tmp_path / 'c.db'}", migrate=True) as store:
        write_report(project, store, out=out, today=TODAY)
        (out / "notes.html").write_text("mine", encoding="utf-8")
        (out / "canary" / "keep.txt").write_text("mine", encoding="utf-8")
        write_report(project, store, out=out, model_ids=["alpha"], today=TODAY)
    assert (out / paths.model_page("alpha")).is_file()
    assert not (out / paths.model_page("beta")).exists()
    assert not (out / "canary" / paths.slug("beta")).exists()
    assert (out / "notes.html").read_text() == "mine" and (out / "canary" / "keep.txt").is_file()


# --------------------------------------------------------------------------- invisible characters

BIDI = "\u202e\u2066"  # right-to-left override + isolate: makes "txt.exe" read as "exe.txt"
ODD_REPLY = f"Lyon {BIDI}gnp.exe\u2069\u202c ok\x1b[31m"
ODD_SERVED = f"alpha{BIDI}-evil"


def build_odd_case(root: Path) -> tuple[Path, Path]:
    """A failing transcript with bidi controls in the reply, the served model and a tool
    argument; an old row whose transcript still holds a raw NUL; a sample stored sanitized."""
    project = make_project(root)
    h = hashes(project)
    odd = sample(
        TODAY,
        "alpha",
        "capital",
        h["capital"],
        0,
        "fail",
        reply=ODD_REPLY,
        served=ODD_SERVED,
        reason=f"contains: no Paris in {BIDI}x",
    )
    surrogate = sample(TODAY, "alpha", "capital", h["capital"], 1, "fail", reply="half \ud800 a character")
    call = ToolCall("call_1", "get_weather", {"city": f"Par{BIDI}is"}, f'{{"city": "Par{BIDI}is"}}')
    weather = sample(
        TODAY,
        "alpha",
        "weather",
        h["weather"],
        0,
        "fail",
        turns=[
            TurnRecord(
                1,
                "What's the weather in Paris?",
                "",
                tool_calls=[call],
                scores=[ScoreRecord("tool_call", False, 0.0, "wrong city")],
            )
        ],
    )
    nul = sample(
        TODAY,
        "alpha",
        "steps",
        h["steps"],
        0,
        "fail",
        turns=[
            TurnRecord(1, "Name a colour.", "bl\x00ue", scores=[ScoreRecord("regex", False, 0.0, "no match")])
        ],
    )
    store = Store.open(f"sqlite:///{root / 'canary.db'}", migrate=True)
    with store:
        save(store, [odd, surrogate, weather, nul])
        # A row from before sanitizing existed: its transcript JSON still carries \u0000.
        import sqlalchemy as sa

        from canary.store.schema import samples as table

        with store.writing() as conn:
            conn.execute(
                sa.update(table)
                .where(table.c.canary_id == "steps")
                .values(transcript=sa.func.replace(table.c.transcript, "\ufffd", "\\u0000"), sanitized=False)
            )
        write_report(project, store, out=root / "report", days=30, today=TODAY)
    return root / "report", project.root


def test_bidi_controls_and_nul_are_shown_as_markers_never_raw(tmp_path):
    out, _ = build_odd_case(tmp_path)
    capital = (out / paths.canary_page("alpha", "capital")).read_text(encoding="utf-8")
    assert "Lyon ⟨U+202E⟩⟨U+2066⟩gnp.exe⟨U+2069⟩⟨U+202C⟩ ok⟨U+001B⟩[31m" in capital
    assert "served by alpha⟨U+202E⟩⟨U+2066⟩-evil" in capital
    assert "contains: no Paris in ⟨U+202E⟩⟨U+2066⟩x" in capital
    # the surrogate was stored as U+FFFD, and the page says the text was altered
    assert "half \ufffd a character" in capital and "text altered to be stored" in capital
    weather = (out / paths.canary_page("alpha", "weather")).read_text(encoding="utf-8")
    assert "Par⟨U+202E⟩⟨U+2066⟩is" in weather
    steps = (out / paths.canary_page("alpha", "steps")).read_text(encoding="utf-8")
    assert "bl⟨U+0000⟩ue" in steps
    for page in out.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert not re.search("[\x00\x1b\u202a-\u202e\u2066-\u2069]", html), page
