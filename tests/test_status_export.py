"""`canary status` and `canary export` on stores filled by real runs: the simulator over HTTP
through the real SDKs, a real SQLite file and the real PostgreSQL. Every export is parsed back
(json, csv, the Prometheus parsers, ElementTree) and checked against the stored samples."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from canary.cli import main
from canary.config.load import Project, load_project
from canary.errors import SetupError
from canary.export import COLUMNS, export, export_to
from canary.records import OUTCOMES
from canary.status import NOT_SCHEDULED, collect_status, print_status, render_status, status_json
from canary.store import HEAD_REVISION, Store
from canary.store import alerting as db
from canary.store.schema import runs
from canary.summary import percentile
from tests.cli_helpers import run_cli
from tests.projects import SINGLE, write_project

DAY1, DAY2 = date(2026, 3, 1), date(2026, 3, 2)

# good passes, bad fails with a hostile reply and a hostile served-model name, down is 503
# (unavailable after its retries), broken gets a 400 (error).
CONFIG = r"""
store: sqlite:///canary.db
defaults:
  samples: 2
  concurrency: 8
  timeout_s: 60
  retry: {attempts: 2, backoff_s: [0.001, 0.002], max_retry_after_s: 1}
models:
  - id: good
    provider: sim
    model: good
    price: {input_per_mtok: 3, output_per_mtok: 15}
  - id: bad
    provider: sim
    protocol: openai
    model: bad
    sim: {quality: 0, served_model: "evil\" } # EOF\n<x>]]>\0\\"}
  - id: down
    provider: sim
    model: down
    sim: {faults: [{kind: status, status: 503}]}
  - id: broken
    provider: sim
    model: broken
    sim: {faults: [{kind: status, status: 400}]}
"""

HOSTILE = r"""
id: hostile
prompt: Say hello.
scorers:
  - contains: hello
sim:
  answer: hello
  wrong: "<script>alert(1)</script> \" ]]> line1\nline2 \0 & done"
"""

SAMPLES_PER_DAY = 4 * 2 * 2  # models x canaries x samples


def _canary(*argv: str) -> int:
    try:
        main(list(argv))
    except SystemExit as exc:
        return exc.code
    return 0


def _fill(root: Path) -> Project:
    """Two days of runs; a PostgreSQL store (CANARY_STORE) is upgraded first, as an operator would."""
    path = write_project(root, CONFIG, {"single.yaml": SINGLE, "hostile.yaml": HOSTILE})
    assert _canary("db", "upgrade", "--config", str(path)) == 0
    for day in (DAY1, DAY2):
        code = _canary("run", "--config", str(path), "--as-of", day.isoformat(), "--quiet")
        assert code == 69, f"run {day} exited {code}"  # `broken` was rejected: one line, exit 69
    return load_project(path)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Iterator[Project]:
    """One SQLite store, two simulated days, shared by the read-only tests below."""
    saved = os.environ.pop("CANARY_STORE", None)
    try:
        yield _fill(tmp_path_factory.mktemp("filled"))
    finally:
        if saved is not None:
            os.environ["CANARY_STORE"] = saved


@pytest.fixture
def store(project) -> Iterator[Store]:
    with Store.open(project.store_url, base_dir=project.root) as s:
        yield s


def _export(project: Project, store: Store, fmt: str, **kw) -> str:
    out = io.StringIO()
    export(project, store, fmt=fmt, out=out, **kw)
    return out.getvalue()


def _expected(store: Store) -> dict[tuple[str, str, str], dict]:
    """The export's numbers, recomputed in Python from every stored sample."""
    groups = defaultdict(list)
    for s in store.samples(with_turns=False):
        groups[(s.day.isoformat(), s.model_id, s.canary_id)].append(s)
    out = {}
    for key, rows in groups.items():
        scored = [r for r in rows if r.outcome in ("pass", "fail")]
        passes = sum(r.outcome == "pass" for r in rows)
        priced = [r.cost_usd for r in rows if r.cost_usd is not None]
        out[key] = {
            "samples": len(rows),
            "passes": passes,
            "scored": len(scored),
            "unavailable": sum(r.outcome == "unavailable" for r in rows),
            "errors": sum(r.outcome in ("error", "harness_error") for r in rows),
            "pass_rate": passes / len(scored) if scored else None,
            "output_tokens_per_task": sum(r.output_tokens for r in scored) / len(scored) if scored else None,
            "cost_usd": sum(priced) if priced else None,
            "latency_p95_s": percentile([r.latency_s for r in scored], 95),
        }
    return out


def _same(row: dict, want: dict) -> None:
    for name, value in want.items():
        got = row[name]
        if value is None or isinstance(value, int):
            assert got == value, (name, row)
        else:
            assert got == pytest.approx(value, rel=1e-5, abs=1e-6), (name, row)


# --------------------------------------------------------------------------- checks (both dialects)


def check_json(project: Project, store: Store) -> None:
    rows = json.loads(_export(project, store, "json"))
    want = _expected(store)
    assert len(rows) == len(want) == 2 * 4 * 2  # days x models x canaries
    assert all(list(r) == list(COLUMNS) for r in rows)
    assert [(r["day"], r["model"], r["canary"]) for r in rows] == sorted(want)
    for r in rows:
        _same(r, want[(r["day"], r["model"], r["canary"])])
    assert want[(DAY2.isoformat(), "good", "capital")]["pass_rate"] == 1.0
    assert want[(DAY2.isoformat(), "down", "capital")]["unavailable"] == 2
    assert want[(DAY2.isoformat(), "broken", "capital")]["errors"] == 2
    # a window: the newest day only, or one chosen day
    assert {r["day"] for r in json.loads(_export(project, store, "json", days=1))} == {DAY2.isoformat()}
    assert {r["day"] for r in json.loads(_export(project, store, "json", day=DAY1, days=1))} == {
        DAY1.isoformat()
    }
    only = json.loads(_export(project, store, "json", model_ids=["good"]))
    assert {r["model"] for r in only} == {"good"} and len(only) == 4


def check_status(project: Project, store: Store) -> None:
    last = store.last_run()
    at_noon = collect_status(project, store, now=datetime(2026, 3, 2, 12, tzinfo=UTC))
    assert at_noon.samples_total == 2 * SAMPLES_PER_DAY
    assert at_noon.samples_today == SAMPLES_PER_DAY  # "today" is the day of `now`

    status = collect_status(project, store)
    assert status.schema_revision == HEAD_REVISION and status.schema_ok
    assert status.db_size_bytes is not None and status.db_size_bytes > 0
    run = status.last_run
    assert run is not None and run.id == last.id
    assert (run.day, run.status, run.n_planned, run.n_done) == (
        DAY2,
        "finished",
        SAMPLES_PER_DAY,
        SAMPLES_PER_DAY,
    )
    assert status.running == ()
    assert timedelta(0) <= status.last_run_age < timedelta(minutes=10)
    firing = db.list_alerts(store)
    assert len(status.open_alerts) == len(firing) >= 1
    assert ("down", "*", "availability") in {(a.model_id, a.scope, a.signal) for a in status.open_alerts}
    assert status.notifications_queued == len(db.queued(store))
    assert (status.next_run, status.schedule_note) == (None, NOT_SCHEDULED)

    text = render_status(status)
    assert f"schema         {HEAD_REVISION} (up to date)" in text
    assert f"last run       {last.id[:12]} day {DAY2} finished, 16/16 samples" in text
    assert "down availability (*) since" in text
    assert f"samples        {2 * SAMPLES_PER_DAY} total" in text
    assert "next run       not scheduled" in text

    data = json.loads(json.dumps(status_json(status)))
    assert data["last_run"]["id"] == last.id and data["last_run"]["status"] == "finished"
    assert data["schema"] == {"revision": HEAD_REVISION, "head": HEAD_REVISION, "ok": True}
    assert data["alerts_firing"] == len(firing) and data["db_size_bytes"] > 0
    assert data["samples"]["total"] == 2 * SAMPLES_PER_DAY


def parse_openmetrics(text: str) -> dict[str, list]:
    """Both of prometheus_client's parsers: strict OpenMetrics, and the classic text format
    the node exporter's textfile collector reads."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
    from prometheus_client.parser import text_string_to_metric_families as classic

    families = {f.name: f for f in om(text)}
    assert {f.name for f in classic(text)} == set(families)
    assert all(f.type == "gauge" for f in families.values())
    return {name: f.samples for name, f in families.items()}


def check_openmetrics(project: Project, store: Store) -> None:
    text = _export(project, store, "openmetrics")
    assert text.endswith("# EOF\n")
    m = parse_openmetrics(text)
    stored = store.samples(day=DAY2, with_turns=False)
    counts = Counter((s.model_id, s.outcome) for s in stored)
    got = {(s.labels["model"], s.labels["outcome"]): s.value for s in m["canary_samples_total"]}
    assert got == {
        (model, o): counts[(model, o)] for model in ("good", "bad", "down", "broken") for o in OUTCOMES
    }
    rates = {(s.labels["model"], s.labels["canary"]): s.value for s in m["canary_pass_rate"]}
    assert rates == {
        ("good", "capital"): 1,
        ("good", "hostile"): 1,
        ("bad", "capital"): 0,
        ("bad", "hostile"): 0,
    }
    firing = {(a.model_id, a.signal, a.scope) for a in db.list_alerts(store)}
    assert {
        (s.labels["model"], s.labels["signal"], s.labels["scope"]) for s in m["canary_alerts_firing"]
    } == firing
    assert [s.value for s in m["canary_last_run_success"]] == [1]
    last = store.last_run()
    assert [s.value for s in m["canary_last_run_timestamp_seconds"]] == [
        pytest.approx(last.finished_at.timestamp(), abs=0.01)
    ]
    assert [s.value for s in m["canary_day_timestamp_seconds"]] == [
        datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    ]
    good = [s for s in stored if s.model_id == "good"]
    tokens = {s.labels["model"]: s.value for s in m["canary_output_tokens_per_task"]}
    assert tokens["good"] == pytest.approx(sum(s.output_tokens for s in good) / len(good))
    assert set(tokens) == {"good", "bad"}  # down and broken scored nothing
    p95 = {s.labels["model"]: s.value for s in m["canary_latency_p95_seconds"]}
    assert p95["good"] == pytest.approx(percentile([s.latency_s for s in good], 95))
    cost = {s.labels["model"]: s.value for s in m["canary_cost_per_correct_usd"]}
    assert cost == {"good": pytest.approx(sum(s.cost_usd for s in good) / len(good))}  # bad has no price


def check_junit(project: Project, store: Store) -> ET.Element:
    root = ET.fromstring(_export(project, store, "junit").encode())
    stored = store.samples(day=store.last_run().day)
    assert root.tag == "testsuites" and int(root.get("tests")) == len(stored) == SAMPLES_PER_DAY
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert sorted(suites) == ["bad", "broken", "down", "good"]
    for model, suite in suites.items():
        mine = [s for s in stored if s.model_id == model]
        cases = suite.findall("testcase")
        assert [(c.get("classname"), c.get("name")) for c in cases] == [
            (model, f"{s.canary_id}#{s.sample_index}") for s in mine
        ]
        assert int(suite.get("tests")) == len(mine)
        assert (
            int(suite.get("failures"))
            == sum(s.outcome == "fail" for s in mine)
            == len(suite.findall("*/failure"))
        )
        assert (
            int(suite.get("skipped"))
            == sum(s.outcome == "unavailable" for s in mine)
            == len(suite.findall("*/skipped"))
        )
        assert (
            int(suite.get("errors"))
            == sum(s.outcome == "error" for s in mine)
            == len(suite.findall("*/error"))
        )
    assert len(suites["good"].findall("*/*")) == 0  # a pass is a bare testcase
    assert len(suites["bad"].findall("*/failure")) == 4
    assert "not a quality verdict" in suites["down"].find("*/skipped").get("message")
    assert "400" in suites["broken"].find("*/error").get("message")
    return root


# --------------------------------------------------------------------------- SQLite


def test_export_json_matches_the_stored_samples(project, store):
    check_json(project, store)


def test_export_csv_has_a_header_and_the_same_rows_as_json(project, store):
    table = list(csv.reader(io.StringIO(_export(project, store, "csv"))))
    assert tuple(table[0]) == COLUMNS
    rows = json.loads(_export(project, store, "json"))
    assert len(table) == len(rows) + 1
    for line, row in zip(table[1:], rows, strict=True):
        assert line == ["" if v is None else str(v) for v in row.values()]


def test_status_reports_last_run_alerts_schema_and_size(project, store):
    check_status(project, store)


def test_openmetrics_parses_and_matches_the_newest_day(project, store):
    check_openmetrics(project, store)


def test_junit_has_one_suite_per_model_and_one_case_per_sample(project, store):
    check_junit(project, store)


def test_hostile_reply_and_served_model_are_exported_safely(project, store):
    bad = [s for s in store.samples(day=DAY2, model_ids=["bad"]) if s.canary_id == "hostile"]
    reply = bad[0].turns[0].reply
    assert "<script>" in reply and "]]>" in reply and '"' in reply and "\n" in reply
    assert "\x00" not in reply and "\ufffd" in reply and bad[0].sanitized  # NUL is stored as U+FFFD
    served = bad[0].served_model
    assert '"' in served and "\n" in served and "\\" in served and "# EOF" in served

    root = check_junit(project, store)
    failures = [f for f in root.iter("failure") if "<script>" in (f.text or "")]
    assert len(failures) == 2
    text = failures[0].text
    assert "<script>alert(1)</script>" in text and "]]>" in text and '"' in text and "line1\nline2" in text
    assert "\x00" not in text and "\ufffd" in text  # NUL cannot exist in XML 1.0: replaced
    assert "<script>" in failures[0].get("message")

    raw = _export(project, store, "openmetrics")
    # every line is a comment or a sample: the newline in the label cannot start a line of its own
    assert all(
        line.startswith(("# HELP ", "# TYPE ", "canary_")) or line == "# EOF" for line in raw.splitlines()
    )
    m = parse_openmetrics(raw)
    labels = {s.labels["model"]: s.labels["served_model"] for s in m["canary_served_model_info"]}
    assert labels == {"good": "good", "bad": served}


def test_out_path_is_replaced_atomically_and_keeps_the_old_file_on_failure(project, tmp_path):
    out = tmp_path / "metrics" / "canary.prom"
    out.parent.mkdir()
    out.write_text("old\n")
    export_to(project, fmt="openmetrics", out=str(out))
    assert out.read_text().endswith("# EOF\n")
    assert os.listdir(out.parent) == ["canary.prom"]  # no temp file left behind

    before = out.read_text()
    with pytest.raises(SetupError, match="unknown --model nope"):
        export_to(project, fmt="openmetrics", out=str(out), model_ids=["nope"])
    assert out.read_text() == before and os.listdir(out.parent) == ["canary.prom"]

    fresh = tmp_path / "fresh.json"
    export_to(project, fmt="json", out=str(fresh))
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask  # readable by a node exporter, like open()
    assert len(json.loads(fresh.read_text())) == 16


def test_export_to_stdout_and_missing_database(project, tmp_path, capsys):
    export_to(project, fmt="csv", out="-")
    assert capsys.readouterr().out.splitlines()[0] == ",".join(COLUMNS)
    empty = load_project(write_project(tmp_path / "empty", CONFIG))
    from canary.errors import CanaryError

    with pytest.raises(CanaryError) as info:
        export_to(empty, fmt="json", out="-")
    assert info.value.exit_code == 66 and not (tmp_path / "empty" / "canary.db").exists()
    with pytest.raises(CanaryError) as info:
        print_status(empty, as_json=False)
    assert info.value.exit_code == 66


def test_status_flags_a_run_whose_process_is_gone(tmp_path):
    project = load_project(write_project(tmp_path, CONFIG))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with Store.open(project.store_url, base_dir=project.root) as store:
        crashed = store.start_run(day=DAY1, model_ids=["good"], n_planned=4)
        remote = store.start_run(day=DAY2, model_ids=["good"], n_planned=4)
        with store.writing() as conn:
            conn.execute(runs.update().where(runs.c.id == crashed).values(pid=gone.pid))
            conn.execute(
                runs.update().where(runs.c.id == remote).values(host="elsewhere-" + socket.gethostname())
            )
        status = collect_status(project, store)
    assert [(r.id, r.status, r.process_alive) for r in status.running] == [
        (crashed, "running", False),
        (remote, "running", None),
    ]
    assert status.last_run.id == remote and status.samples_total == 0
    text = render_status(status)
    assert "process gone: crashed" in text and f"pid {gone.pid}" in text
    assert [r["process_alive"] for r in status_json(status)["running"]] == [False, None]


def test_status_shows_the_next_scheduled_run(tmp_path):
    config = CONFIG + "schedule: {cron: '30 6 * * *', timezone: UTC}\n"
    project = load_project(write_project(tmp_path, config))
    with Store.open(project.store_url, base_dir=project.root) as store:
        status = collect_status(project, store, now=datetime(2026, 3, 2, 7, 0, tzinfo=UTC))
    assert status.next_run == datetime(2026, 3, 3, 6, 30, tzinfo=UTC)
    assert status.last_run is None and status.open_alerts == ()
    text = render_status(status)
    assert "next run       2026-03-03 06:30:00 UTC (in 23.5 h), cron `30 6 * * *` in UTC" in text
    assert "last run       no runs yet" in text
    assert status_json(status)["next_run"] == "2026-03-03T06:30:00+00:00"


def test_status_on_a_schema_behind_this_code_says_so(tmp_path):
    project = load_project(write_project(tmp_path, CONFIG))
    with Store.open(project.store_url, base_dir=project.root) as store, store.writing() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    text = print_status(project, as_json=False)
    assert f"schema    0001, this canary needs {HEAD_REVISION}: run `canary db upgrade`" in text.splitlines()
    assert "last run" not in text  # the tables may not be this code's: not read


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_status_and_every_export_on_postgres(pg_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CANARY_STORE", pg_url)
    project = _fill(tmp_path)
    with Store.open(project.store_url, base_dir=project.root) as store:
        assert store.target.dialect == "postgresql"
        check_json(project, store)
        check_status(project, store)
        check_openmetrics(project, store)
        check_junit(project, store)
    shown = json.loads(print_status(project, as_json=True))
    assert shown["store"].startswith("postgresql+psycopg://") and shown["db_size_bytes"] > 0
    assert run_cli(capsys, "results", "--config", str(project.config_path), "--last", "--json").code == 0
