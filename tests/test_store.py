"""The results store on a real SQLite file and the real PostgreSQL (see `store_url`)."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from canary.config.models import SimBehaviour
from canary.errors import StoreError
from canary.records import Attempt, SampleResult, ScoreRecord, ToolCall, TurnRecord
from canary.sim import SimServer
from canary.store import SampleRow, SampleWriter, Store
from canary.store.alerting import lock_for_check
from canary.store.engine import Timeouts, parse_url
from canary.store.schema import HEAD_REVISION
from canary.store.schema import attempts as attempts_table
from canary.store.schema import samples as samples_table
from tests.cli_helpers import config_with, remote_model, run_cli, script_the_sim
from tests.projects import write_project

DAY = date(2025, 3, 14)
CEST = timezone(timedelta(hours=2))
T0 = datetime(2025, 3, 14, 8, 30, 15, 123456, tzinfo=CEST)


def make_sample(
    index: int = 0,
    *,
    day: date = DAY,
    model_id: str = "opus",
    canary_id: str = "capital",
    canary_hash: str = "abc123",
    outcome: str = "pass",
    reply: str = "Paris",
    n_attempts: int = 1,
) -> SampleResult:
    tries = [
        Attempt(
            number=n,
            started_at=T0 + timedelta(seconds=n),
            latency_s=0.25 * n,
            status=529,
            code="overloaded",
            message="try later",
            retry_after_s=1.5,
            turn=1,
        )
        for n in range(1, n_attempts)
    ]
    tries.append(
        Attempt(
            number=n_attempts,
            started_at=T0 + timedelta(seconds=n_attempts),
            latency_s=0.5,
            status=200,
            code="ok",
        )
    )
    return SampleResult(
        day=day,
        model_id=model_id,
        canary_id=canary_id,
        canary_hash=canary_hash,
        sample_index=index,
        outcome=outcome,  # type: ignore[arg-type]
        started_at=T0,
        finished_at=T0 + timedelta(seconds=3),
        score=1.0 if outcome == "pass" else 0.0,
        reason="matched",
        turns=[
            TurnRecord(
                index=1,
                sent="Capital of France?",
                reply=reply,
                scores=[ScoreRecord("regex", outcome == "pass", 1.0, "ok")],
            )
        ],
        attempts=tries,
        input_tokens=12,
        output_tokens=3,
    )


@pytest.fixture
def store(store_url: str) -> Store:
    s = Store.open(store_url, migrate=True)
    yield s
    s.close()


@pytest.fixture
def run_id(store: Store) -> str:
    return store.start_run(day=DAY, model_ids=["opus", "gpt"], n_planned=10)


def count_rows(store: Store, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


# --------------------------------------------------------------------------- samples


def test_round_trip_keeps_every_field(store: Store, run_id: str) -> None:
    big = ("Ünïcødé 🙂 漢字 " * 80_000)[:1_000_000]
    sample = SampleResult(
        day=DAY,
        model_id="opus",
        canary_id="tools",
        canary_hash="h1",
        sample_index=2,
        outcome="fail",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=7),
        score=0.5,
        reason="turn 2: no match for 'DONE' — ünïcødé",
        failed_turn=2,
        turns=[
            TurnRecord(
                index=1,
                sent="Look up the weather in Zürich",
                reply="",
                tool_calls=[
                    ToolCall(
                        id="call_1",
                        name="weather",
                        arguments={"city": "Zürich"},
                        raw_arguments='{"city":"Zürich"}',
                    ),
                    ToolCall(id="call_2", name="weather", arguments=None, raw_arguments='{"city": "Zür'),
                ],
                input_tokens=100,
                output_tokens=20,
                latency_s=1.25,
                served_model="claude-x-2025",
                stop_reason="tool_use",
                fingerprint="fp_1",
                scores=[ScoreRecord("tool_call", True, 1.0, "called weather")],
            ),
            TurnRecord(
                index=2,
                sent='{"temp": 21}',
                reply=big + "\x00end",
                input_tokens=150,
                output_tokens=250_000,
                latency_s=9.5,
                scores=[ScoreRecord("regex", False, 0.0, "no DONE")],
            ),
        ],
        attempts=[
            Attempt(1, T0, 0.1, 529, "overloaded", "Overloaded", retry_after_s=2.0, turn=1),
            Attempt(2, T0 + timedelta(seconds=2), 1.25, 200, "ok", turn=1),
            Attempt(1, T0 + timedelta(seconds=4), 9.5, 200, "ok", turn=2),
        ],
        input_tokens=250,
        output_tokens=250_020,
        cost_usd=0.0123,
        latency_s=10.75,
        served_model="claude-x-2025",
        fingerprint="fp_1",
        stop_reason="end_turn",
        error_code=None,
        error_message="nul\x00byte",
    )
    assert store.save_sample(run_id, sample) is True

    [row] = store.samples(run_id=run_id)
    assert isinstance(row, SampleRow)
    assert row.key == sample.key and row.day == DAY and row.run_id == run_id
    assert (row.outcome, row.score, row.reason, row.failed_turn) == ("fail", 0.5, sample.reason, 2)
    assert (row.input_tokens, row.output_tokens, row.cost_usd, row.latency_s) == (250, 250_020, 0.0123, 10.75)
    assert (row.served_model, row.fingerprint, row.stop_reason, row.error_code) == (
        "claude-x-2025",
        "fp_1",
        "end_turn",
        None,
    )
    assert row.error_message == "nul\ufffdbyte"  # PostgreSQL text cannot hold NUL
    assert row.started_at == T0 and row.started_at.tzinfo == UTC
    assert row.finished_at == sample.finished_at and row.finished_at.tzinfo == UTC
    # the transcript exactly, 1 MB answer included, but NUL (which PostgreSQL text cannot hold
    # and a reader cannot see) replaced by U+FFFD, and the turn and the sample flagged
    assert row.turns[0] == sample.turns[0] and not row.turns[0].sanitized
    assert row.turns[1].reply == big + "\ufffdend" and row.turns[1].sanitized
    assert row.turns[1].scores == sample.turns[1].scores
    assert row.sanitized
    assert len(row.turns[1].reply) == 1_000_004
    assert row.n_attempts == 3
    assert row.attempts == sample.attempts
    assert all(a.started_at.tzinfo == UTC for a in row.attempts)


def test_existing_keys_is_per_day_and_model(store: Store, run_id: str) -> None:
    for s in [
        make_sample(0),
        make_sample(1),
        make_sample(0, canary_hash="new"),
        make_sample(0, model_id="gpt"),
        make_sample(0, model_id="other"),
        make_sample(5, day=DAY + timedelta(days=1)),
    ]:
        assert store.save_sample(run_id, s)
    assert store.existing_keys(DAY, ["opus", "gpt"]) == {
        ("opus", "capital", "abc123", 0),
        ("opus", "capital", "abc123", 1),
        ("opus", "capital", "new", 0),
        ("gpt", "capital", "abc123", 0),
    }
    assert store.existing_keys(DAY + timedelta(days=1), ["opus"]) == {("opus", "capital", "abc123", 5)}
    assert store.existing_keys(DAY, []) == set()
    assert store.existing_keys(DAY - timedelta(days=1), ["opus"]) == set()


def test_saving_an_existing_key_keeps_the_first(store: Store, run_id: str) -> None:
    assert store.save_sample(run_id, make_sample(outcome="pass", reply="Paris")) is True
    assert store.save_sample(run_id, make_sample(outcome="fail", reply="Lyon", n_attempts=3)) is False
    [row] = store.samples()
    assert (row.outcome, row.turns[0].reply, len(row.attempts)) == ("pass", "Paris", 1)
    assert count_rows(store, attempts_table) == 1


def test_replace_swaps_the_row_and_its_attempts(store: Store, run_id: str) -> None:
    assert store.save_sample(run_id, make_sample(outcome="pass", reply="Paris", n_attempts=3))
    other = make_sample(1)
    assert store.save_sample(run_id, other)
    second_run = store.start_run(day=DAY, model_ids=["opus"], n_planned=1)

    assert store.save_sample(
        second_run, make_sample(outcome="fail", reply="Lyon", n_attempts=2), replace=True
    )

    rows = store.samples(day=DAY)
    assert [r.sample_index for r in rows] == [0, 1]
    replaced = rows[0]
    assert (replaced.outcome, replaced.turns[0].reply, replaced.run_id) == ("fail", "Lyon", second_run)
    assert [(a.number, a.code) for a in replaced.attempts] == [(1, "overloaded"), (2, "ok")]
    assert len(rows[1].attempts) == 1  # the neighbour is untouched
    assert count_rows(store, samples_table) == 2
    assert count_rows(store, attempts_table) == 3


def test_replace_of_a_new_key_inserts(store: Store, run_id: str) -> None:
    assert store.save_sample(run_id, make_sample(7), replace=True) is True
    assert [r.sample_index for r in store.samples()] == [7]


def test_samples_filters(store: Store, run_id: str) -> None:
    other_run = store.start_run(day=DAY + timedelta(days=1), model_ids=["gpt"], n_planned=1)
    store.save_sample(run_id, make_sample(0))
    store.save_sample(run_id, make_sample(0, model_id="gpt"))
    store.save_sample(other_run, make_sample(0, model_id="gpt", day=DAY + timedelta(days=1), n_attempts=2))

    assert [(r.model_id, r.day) for r in store.samples(run_id=run_id)] == [("gpt", DAY), ("opus", DAY)]
    assert [r.model_id for r in store.samples(day=DAY, model_ids=["opus"])] == ["opus"]
    [late] = store.samples(run_id=other_run)
    assert late.day == DAY + timedelta(days=1) and len(late.attempts) == 2
    assert store.samples(model_ids=[]) == []
    light = store.samples(model_ids=["gpt"], with_turns=False)
    assert [r.turns for r in light] == [[], []]
    assert [len(r.attempts) for r in light] == [1, 2]


def test_concurrent_writers_store_each_key_once(store_url: str, store: Store, run_id: str) -> None:
    """Two Store instances, two threads each, racing on the same keys: one row per key."""
    second = Store.open(store_url)
    keys = range(15)
    barrier = threading.Barrier(4)
    results: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def race(s: Store, reply: str) -> None:
        try:
            barrier.wait()
            for i in keys:
                ok = s.save_sample(run_id, make_sample(i, reply=reply, n_attempts=2))
                with lock:
                    results.append(ok)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=race, args=(s, f"writer {n}")) for n, s in enumerate([store, second] * 2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    second.close()

    assert errors == []
    assert results.count(True) == len(keys) and results.count(False) == 3 * len(keys)
    assert count_rows(store, samples_table) == len(keys)
    assert count_rows(store, attempts_table) == 2 * len(keys)


def test_concurrent_replaces_leave_one_consistent_version(store_url: str, store: Store, run_id: str) -> None:
    second = Store.open(store_url)
    store.save_sample(run_id, make_sample(0, reply="original", n_attempts=1))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def replace(s: Store, n_attempts: int) -> None:
        try:
            barrier.wait()
            for _ in range(10):
                s.save_sample(
                    run_id, make_sample(0, reply=f"{n_attempts}", n_attempts=n_attempts), replace=True
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=replace, args=(s, n)) for s, n in [(store, 2), (second, 3)]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    second.close()

    assert errors == []
    [row] = store.samples()
    assert row.turns[0].reply in ("2", "3")
    assert len(row.attempts) == int(row.turns[0].reply) == row.n_attempts  # never a mix of two versions
    assert count_rows(store, attempts_table) == row.n_attempts


# --------------------------------------------------------------------------- writer


def test_writer_commits_each_sample_before_close(store_url: str, store: Store, run_id: str) -> None:
    reader = Store.open(store_url)
    writer = SampleWriter(store, run_id)
    try:
        writer.submit(make_sample(0))
        writer.flush()
        assert [r.sample_index for r in reader.samples(run_id=run_id)] == [0]  # visible to another Store
        writer.submit(make_sample(1))
        writer.submit(make_sample(0))  # already stored: skipped, not an error
        writer.flush()
        assert reader.existing_keys(DAY, ["opus"]) == {
            ("opus", "capital", "abc123", 0),
            ("opus", "capital", "abc123", 1),
        }
        assert writer.error is None
    finally:
        written = writer.close()
        reader.close()
    assert (written, writer.written, writer.skipped) == (2, 2, 1)
    with pytest.raises(RuntimeError):
        writer.submit(make_sample(2))
    assert writer.close() == 2  # idempotent


def test_writer_reports_the_first_failure(store: Store, run_id: str) -> None:
    writer = SampleWriter(store, "no-such-run")  # the foreign key rejects every sample
    writer.submit(make_sample(0))
    writer.submit(make_sample(1))
    writer.flush()
    assert isinstance(writer.error, StoreError)
    with pytest.raises(StoreError) as caught:
        writer.close()
    assert caught.value is writer.error
    assert "\n" not in str(caught.value)
    assert store.samples() == []


def test_writer_with_replace(store: Store, run_id: str) -> None:
    store.save_sample(run_id, make_sample(0, reply="old"))
    with SampleWriter(store, run_id, replace=True) as writer:
        writer.submit(make_sample(0, reply="new"))
    assert writer.written == 1
    assert [r.turns[0].reply for r in store.samples()] == ["new"]


def test_text_no_database_can_hold_is_replaced_and_flagged(store: Store, run_id: str) -> None:
    odd = "a\ud800b\x00c"  # a lone surrogate (JSON "\ud800") and NUL
    sample = make_sample(0, reply="Paris " + odd)
    sample.turns[0].tool_calls = [
        ToolCall(
            id="c\udfff", name="look\x00up", arguments={"k\ud800": [odd]}, raw_arguments='{"k": "\ud800"}'
        )
    ]
    sample.turns[0].served_model = sample.served_model = "m\ud800"
    sample.turns[0].scores[0] = ScoreRecord("regex", True, 1.0, odd)
    sample.fingerprint, sample.stop_reason, sample.reason, sample.error_message = odd, odd, odd, odd
    sample.attempts[0] = Attempt(1, T0, 0.5, 200, "ok\x00", odd)
    clean = make_sample(1, reply="\U0001f600 fine")  # as JSON "\ud83d\ude00" decodes
    split = make_sample(2, reply="\ud83d" + "\ude00")  # a pair split across two stream deltas
    assert (
        store.save_sample(run_id, sample)
        and store.save_sample(run_id, clean)
        and store.save_sample(run_id, split)
    )

    bad, good, joined = store.samples(run_id=run_id)
    fixed = "a\ufffdb\ufffdc"
    turn = bad.turns[0]
    assert bad.sanitized and turn.sanitized
    assert turn.reply == "Paris " + fixed and turn.scores[0].reason == fixed
    assert turn.tool_calls == [ToolCall("c\ufffd", "look\ufffdup", {"k\ufffd": [fixed]}, '{"k": "\ufffd"}')]
    assert turn.served_model == bad.served_model == "m\ufffd"
    assert (bad.fingerprint, bad.stop_reason, bad.reason, bad.error_message) == (fixed,) * 4
    assert (bad.attempts[0].code, bad.attempts[0].message) == ("ok\ufffd", fixed)
    assert not good.sanitized and not good.turns[0].sanitized and good.turns[0].reply == "\U0001f600 fine"
    assert joined.turns[0].reply == "\U0001f600" and not joined.sanitized  # rejoined: nothing lost
    assert store.samples(run_id=run_id, with_turns=False)[0].sanitized


def test_writer_stores_a_refused_sample_as_its_harness_error(store: Store, run_id: str) -> None:
    """A value no integer column holds (a usage count a server made up) is refused by the
    database: that sample becomes harness_error, the ones before and after are stored."""
    refused = make_sample(1, n_attempts=2)
    refused.output_tokens = 10**20
    with SampleWriter(store, run_id) as writer:
        for sample in (make_sample(0), refused, make_sample(2)):
            writer.submit(sample)
        writer.flush()
        assert writer.error is None
    assert writer.written == 3
    [(key, why)] = writer.unstorable
    assert key == refused.key and why.startswith("could not be stored: ")
    rows = store.samples(run_id=run_id)
    assert [(r.sample_index, r.outcome) for r in rows] == [(0, "pass"), (1, "harness_error"), (2, "pass")]
    kept = rows[1]
    assert (kept.reason, kept.error_code, kept.error_message) == (why, "unstorable", why)
    assert kept.turns == [] and kept.output_tokens == 0
    assert [a.status for a in kept.attempts] == [529, 200]  # the request history is kept
    assert "\n" not in why and why.isascii()


def test_writer_stops_on_an_outage_not_on_a_sample(tmp_path: Path) -> None:
    """A locked database is the store's problem: the writer stops instead of rewriting samples."""
    path = tmp_path / "canary.db"
    store = Store.open(f"sqlite:///{path}", busy_timeout_s=0.1)
    run_id = store.start_run(day=DAY, model_ids=["opus"], n_planned=2)
    holder = sqlite3.connect(path)
    holder.execute("BEGIN IMMEDIATE")
    try:
        writer = SampleWriter(store, run_id)
        writer.submit(make_sample(0))
        writer.flush()
        assert isinstance(writer.error, StoreError) and "locked" in str(writer.error)
        assert writer.unstorable == []
    finally:
        holder.rollback()
        holder.close()
    with pytest.raises(StoreError):
        writer.close()
    assert store.samples() == []
    store.close()


# --------------------------------------------------------------------------- runs and canaries


def test_run_lifecycle(store: Store) -> None:
    assert store.last_run() is None
    first = store.start_run(day=DAY, model_ids=["opus", "gpt"], n_planned=6)
    run = store.get_run(first)
    assert run is not None
    assert (run.status, run.n_planned, run.n_done, run.finished_at) == ("running", 6, 0, None)
    assert run.model_ids == ("opus", "gpt") and run.day == DAY and run.pid > 0 and run.host
    assert run.started_at.tzinfo == UTC and len(run.id) == 32

    store.finish_run(first, status="finished", n_done=6)
    done = store.get_run(first)
    assert done is not None and (done.status, done.n_done) == ("finished", 6)
    assert done.finished_at is not None and done.finished_at >= done.started_at

    second = store.start_run(day=DAY + timedelta(days=1), model_ids=["opus"], n_planned=3)
    last = store.last_run()
    assert last is not None and last.id == second and last.status == "running"
    store.finish_run(second, status="interrupted", n_done=1)
    assert store.get_run(second).status == "interrupted"  # type: ignore[union-attr]

    assert store.get_run("missing") is None
    with pytest.raises(ValueError, match="finished"):
        store.finish_run(second, status="running", n_done=1)
    with pytest.raises(StoreError, match="no run"):
        store.finish_run("missing", status="failed", n_done=0)


def test_save_canaries_is_idempotent(store: Store) -> None:
    store.save_canaries(
        [
            ("capital", "h1", "single", '{"prompt":"Capital?"}'),
            ("tools", "h2", "tool_call", '{"prompt":"Wetter in Zürich?"}'),
        ]
    )
    store.save_canaries(
        [
            ("capital", "h1", "single", '{"prompt":"changed?"}'),
            ("capital", "h3", "single", '{"prompt":"Capital of Peru?"}'),
        ]
    )
    store.save_canaries([])
    from canary.store.schema import canaries

    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(canaries.c.canary_id, canaries.c.canary_hash, canaries.c.content).order_by(
                canaries.c.canary_id, canaries.c.canary_hash
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("capital", "h1", '{"prompt":"Capital?"}'),
        ("capital", "h3", '{"prompt":"Capital of Peru?"}'),
        ("tools", "h2", '{"prompt":"Wetter in Zürich?"}'),
    ]


# --------------------------------------------------------------------------- SQLite specifics


def test_sqlite_settings(tmp_path: Path) -> None:
    with Store.open("sqlite:///canary.db", base_dir=tmp_path) as store, store.engine.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
        assert pragma == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1, "busy_timeout": 5000}
    assert (tmp_path / "canary.db").is_file()


def test_sqlite_locked_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "canary.db"
    store = Store.open(f"sqlite:///{path}", busy_timeout_s=0.05)
    run_id = store.start_run(day=DAY, model_ids=["opus"], n_planned=1)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="database is locked by another process") as caught:
            store.save_sample(run_id, make_sample(0))
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)
        assert store.samples() == []  # reads still work in WAL mode
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.save_sample(run_id, make_sample(0)) is True
    store.close()


def test_sqlite_full_disk_keeps_what_was_committed(tmp_path: Path) -> None:
    path = tmp_path / "canary.db"
    store = Store.open(f"sqlite:///{path}")
    run_id = store.start_run(day=DAY, model_ids=["opus"], n_planned=2)
    assert store.save_sample(run_id, make_sample(0))
    with store.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()

    @sa.event.listens_for(store.engine, "connect")
    def _limit(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages + 2}")

    store.engine.dispose()
    with pytest.raises(StoreError, match="database or disk is full: nothing already committed was lost"):
        store.save_sample(run_id, make_sample(1, reply="x" * 1_000_000))
    writer = SampleWriter(store, run_id)
    writer.submit(make_sample(2, reply="y" * 1_000_000))
    with pytest.raises(StoreError, match="disk is full"):
        writer.close()
    store.close()

    with Store.open(f"sqlite:///{path}") as fresh:
        assert [r.sample_index for r in fresh.samples()] == [0]


def test_bad_urls_are_store_errors(tmp_path: Path) -> None:
    for url, words in [
        ("mysql://u@h/db", "unsupported store URL scheme"),
        ("sqlite://", "needs a SQLite file"),
        ("sqlite:///:memory:", "needs a SQLite file"),
        ("postgresql+asyncpg://u@h/db", "psycopg"),
        ("::not a url::", "invalid store URL"),
    ]:
        with pytest.raises(StoreError, match=words):
            Store.open(url, base_dir=tmp_path)


# --------------------------------------------------------------------------- PostgreSQL specifics


def test_postgres_unreachable_is_one_line_without_password() -> None:
    with pytest.raises(StoreError) as caught:
        Store.open("postgres://canary:s3cr3t-pw@127.0.0.1:1/results")
    message = str(caught.value)
    assert message.startswith("cannot connect to PostgreSQL at 127.0.0.1:1/results: ")
    assert "s3cr3t-pw" not in message and "\n" not in message


def test_postgres_display_url_hides_the_password(pg_url: str) -> None:
    url = pg_url.replace("postgresql+psycopg://postgres@", "postgresql://postgres:s3cr3t-pw@")
    assert "s3cr3t-pw" in url
    with Store.open(url, migrate=True) as store:  # trust auth ignores the password
        assert "s3cr3t-pw" not in store.display_url
        assert store.display_url.startswith("postgresql+psycopg://postgres:***@127.0.0.1:5432/test")


# --------------------------------------------------------------------------- bounded waits (timeouts)


def test_timeouts_come_from_the_url_and_never_reach_the_driver(tmp_path: Path) -> None:
    target = parse_url(
        "postgresql://u@h/db?lock_timeout_s=2.5&statement_timeout_s=60&connect_timeout_s=3&sslmode=x"
    )
    assert target.timeouts == Timeouts(connect_s=3, lock_s=2.5, statement_s=60)
    assert dict(target.url.query) == {"sslmode": "x"}  # libpq would refuse canary's own names
    assert parse_url("postgresql://u@h/db").timeouts.lock_for("postgresql") == 30
    assert parse_url("sqlite:///x.db", tmp_path).timeouts.lock_for("sqlite") == 5
    with pytest.raises(StoreError, match=r"lock_timeout_s='soon' is not a number of seconds"):
        parse_url("postgresql://u@h/db?lock_timeout_s=soon")
    url = f"sqlite:///{tmp_path / 'canary.db'}?lock_timeout_s=0.25"
    with Store.open(url) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 250


def test_postgres_sessions_set_lock_and_statement_timeouts(pg_url: str) -> None:
    with Store.open(pg_url, migrate=True) as store, store.engine.connect() as conn:
        shown = [
            conn.exec_driver_sql(f"SHOW {name}").scalar() for name in ("lock_timeout", "statement_timeout")
        ]
        assert shown == ["30s", "2min"]  # the defaults
    with Store.open(f"{pg_url}&lock_timeout_s=0.5&statement_timeout_s=0.2") as store:
        for _ in range(2):  # a pooled connection keeps them after the pool's rollback-on-return
            with store.engine.connect() as conn:
                assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "500ms"
        with pytest.raises(StoreError) as caught, store.reading() as conn:
            conn.execute(sa.text("SELECT pg_sleep(30)"))
        message = str(caught.value)
        assert message.startswith(
            "a statement on PostgreSQL at 127.0.0.1:5432/test was cancelled after at most 0.2 s"
        )
        assert "\n" not in message


def _pg_project(tmp_path: Path, server: SimServer, pg_url: str, extra: str = "") -> Path:
    store = f'{{url: "{pg_url}", lock_timeout_s: 0.5{extra}}}'
    path = write_project(tmp_path, config_with(remote_model("m", "locky", server), samples=3, store=store))
    script_the_sim(server, path, {"locky": SimBehaviour()})
    return path


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def test_postgres_table_locked_by_another_session_exits_74_keeping_committed_samples(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    server: SimServer,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CANARY_TEST_KEY", "sk-store-test-0")
    path = _pg_project(tmp_path, server, pg_url)
    with Store.open(pg_url, migrate=True):
        pass
    first = run_cli(capsys, "run", "--config", str(path), "--as-of", "2026-05-01", "--no-check", "--quiet")
    assert first.code == 0, first.err
    server.reset()
    blocker = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with blocker.connect() as conn:
        conn.exec_driver_sql(
            "LOCK TABLE samples IN ACCESS EXCLUSIVE MODE"
        )  # held: the transaction stays open
        locked = run_cli(
            capsys, "run", "--config", str(path), "--as-of", "2026-05-02", "--no-check", "--quiet"
        )
        conn.rollback()
    blocker.dispose()
    assert locked.code == 74
    line = _one_line(locked.err)
    assert line.startswith(
        "canary: error: a lock in PostgreSQL at 127.0.0.1:5432/test is held by another session (a locked table"
    )
    assert "within 0.5 s" in line and "committed samples are kept" in line
    assert server.stats() == {}  # stopped before asking any model
    with Store.open(pg_url) as store:
        assert [(str(r.day), r.sample_index) for r in store.samples(with_turns=False)] == [
            ("2026-05-01", 0),
            ("2026-05-01", 1),
            ("2026-05-01", 2),
        ]
    again = run_cli(capsys, "run", "--config", str(path), "--as-of", "2026-05-02", "--no-check", "--quiet")
    assert again.code == 0 and server.stats() == {"locky": 3}


def test_postgres_check_lock_held_elsewhere_is_bounded(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    server: SimServer,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The alert transaction's advisory lock honours lock_timeout too: a stuck check elsewhere
    makes this one end with exit 74, not wait forever."""
    monkeypatch.setenv("CANARY_TEST_KEY", "sk-store-test-0")
    path = _pg_project(tmp_path, server, pg_url)
    with Store.open(pg_url, migrate=True):
        pass
    assert run_cli(capsys, "run", "--config", str(path), "--as-of", "2026-05-01", "--quiet").code in (0, 1)
    blocker = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with blocker.connect() as conn:
        lock_for_check(conn)  # what a check in progress holds until its transaction ends
        result = run_cli(capsys, "check", "--config", str(path), "--as-of", "2026-05-01")
        conn.rollback()
    blocker.dispose()
    assert result.code == 74
    assert "is held by another session" in _one_line(result.err) and "within 0.5 s" in result.err
    assert run_cli(capsys, "check", "--config", str(path), "--as-of", "2026-05-01").code in (0, 1)


def test_store_mapping_in_canary_yaml_is_validated(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_project(
        tmp_path,
        config_with(
            "- {id: m, provider: sim, model: m}\n", store="{url: sqlite:///canary.db, lock_timeout: 5}"
        ),
    )
    result = run_cli(capsys, "run", "--config", str(path), "--no-check", "--quiet")
    assert result.code == 65
    assert "canary.yaml:1" in result.err and "lock_timeout" in result.err


# --------------------------------------------------------------------------- migration 0005 (notification outcomes)


def test_migration_0005_keeps_queued_notifications_and_allows_failed(store_url: str) -> None:
    from alembic import command

    from canary.store import migrate as store_migrate
    from canary.store.alerting import enqueue, failed, queued

    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    with Store.open(store_url, migrate=True) as store:
        with store.engine.begin() as conn:
            command.downgrade(store_migrate.alembic_config(conn), "0004")
        with store.engine.begin() as conn:  # a 0004 outbox row, as the previous canary wrote it
            conn.exec_driver_sql(
                "INSERT INTO notifications (message_id, channel, payload, status, created_at, attempts) "
                "VALUES ('m1', 'slack', '{}', 'queued', '2026-06-01 12:00:00', 2)"
            )
        assert store.upgrade() == ("0004", HEAD_REVISION)
        [row] = queued(store)
        assert (row.message_id, row.attempts, row.next_attempt_at, row.first_attempt_at) == (
            "m1",
            2,
            None,
            None,
        )
        with store.writing() as conn:
            enqueue(conn, "m2", ["email"], "{}", now)
        with store.writing() as conn:
            conn.execute(sa.text("UPDATE notifications SET status = 'failed' WHERE message_id = 'm2'"))
        assert [r.message_id for r in failed(store)] == ["m2"]
        with store.engine.begin() as conn:  # and back: an older canary would retry it
            command.downgrade(store_migrate.alembic_config(conn), "0004")
        with store.engine.connect() as conn:
            statuses = dict(conn.execute(sa.text("SELECT message_id, status FROM notifications")).all())
        assert statuses == {"m1": "queued", "m2": "queued"}


def test_sqlite_first_open_waits_a_bounded_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process stopped while opening (or upgrading) the database must not hang every later open."""
    import fcntl

    from canary.store import store as store_module

    monkeypatch.setattr(store_module, "OPEN_LOCK_WAIT_S", 0.2)
    path = tmp_path / "canary.db"
    with open(tmp_path / "canary.db.open-lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # what a stopped first open holds
        with pytest.raises(
            StoreError, match=r"another canary has been opening \(or upgrading\) .* for more than 0.2 s"
        ):
            Store.open(f"sqlite:///{path}")
    with Store.open(f"sqlite:///{path}") as store:  # released: opens normally
        assert store.schema_revision() is not None


def test_postgres_server_that_never_answers_is_a_bounded_connect() -> None:
    """A port that accepts TCP but never speaks (a hung server, a black-holing proxy): libpq's
    connect timeout ends the wait with one line, instead of a run that hangs at 06:00."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with pytest.raises(StoreError) as caught:
            Store.open(f"postgresql://canary:s3cr3t-pw@127.0.0.1:{port}/results?connect_timeout_s=2")
    message = str(caught.value)
    assert message.startswith(f"cannot connect to PostgreSQL at 127.0.0.1:{port}/results: ")
    assert "timeout" in message and "s3cr3t-pw" not in message and "\n" not in message
