"""Alembic migrations against the models, on a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

import canary
from canary.errors import StoreError
from canary.store import HEAD_REVISION, Store
from canary.store import migrate as store_migrate
from canary.store.schema import REVISIONS, metadata

REPO = Path(__file__).resolve().parent.parent


def alembic_script():  # type: ignore[no-untyped-def]
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(store_migrate.alembic_config())


def set_revision(url: str, revision: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
    engine.dispose()


def test_head_revision_is_the_alembic_head() -> None:
    script = alembic_script()
    assert script.get_heads() == [HEAD_REVISION]
    history = [rev.revision for rev in script.walk_revisions()]  # newest first
    assert tuple(reversed(history)) == REVISIONS


def test_models_and_migrations_agree(store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with Store.open(store_url, migrate=True) as store, store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, metadata) == []

        # ...and the comparison is live: a column the migrations lack is reported.
        changed = sa.MetaData()
        for table in metadata.tables.values():
            table.to_metadata(changed)
        changed.tables["samples"].append_column(sa.Column("extra", sa.Text))
        assert [d[0] for d in compare_metadata(context, changed)] == ["add_column"]


def test_sqlite_fresh_file_is_migrated_automatically(tmp_path: Path) -> None:
    with Store.open("sqlite:///data/results/canary.db", base_dir=tmp_path) as store:
        assert store.migrated == (None, HEAD_REVISION)
        assert store.schema_revision() == HEAD_REVISION
        assert store.display_url == f"sqlite:///{tmp_path / 'data/results/canary.db'}"
    with Store.open("sqlite:///data/results/canary.db", base_dir=tmp_path) as again:
        assert again.migrated is None  # already at head: nothing to do, Alembic not needed
        assert again.upgrade() == (HEAD_REVISION, HEAD_REVISION)


def test_sqlite_without_migrate_only_checks(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=rf"revision none .* needs {HEAD_REVISION}: run `canary db upgrade`"):
        Store.open(f"sqlite:///{tmp_path / 'canary.db'}", migrate=False)


def test_postgres_behind_asks_for_upgrade_then_upgrades(pg_url: str) -> None:
    with pytest.raises(StoreError) as caught:
        Store.open(pg_url)
    assert "canary db upgrade" in str(caught.value)
    assert f"this canary needs {HEAD_REVISION}" in str(caught.value)

    with Store.open(pg_url, migrate=True) as store:
        assert store.migrated == (None, HEAD_REVISION)
    with Store.open(pg_url) as store:
        assert store.schema_revision() == HEAD_REVISION
        assert store.upgrade() == (HEAD_REVISION, HEAD_REVISION)


def test_database_ahead_of_the_code_is_refused(store_url: str) -> None:
    Store.open(store_url, migrate=True).close()
    set_revision(store_url, "9999")
    for migrate in (None, True, False):
        with pytest.raises(StoreError, match="revision 9999, which this canary .* does not know"):
            Store.open(store_url, migrate=migrate)


def test_concurrent_first_opens_migrate_once(store_url: str) -> None:
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def open_store() -> None:
        try:
            barrier.wait()
            with Store.open(store_url, migrate=True) as store:
                outcomes.append(store.migrated)
        except BaseException as exc:  # pragma: no cover - reported below
            outcomes.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Exactly one of them upgraded from nothing; the other found the schema at head.
    assert sorted(outcomes, key=repr) == sorted([(None, HEAD_REVISION), None], key=repr)


def test_downgrade_and_upgrade_again(store_url: str) -> None:
    from alembic import command

    with Store.open(store_url, migrate=True) as store:
        with store.engine.begin() as conn:
            command.downgrade(store_migrate.alembic_config(conn), "base")
        with store.engine.connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) == {"alembic_version"}
        assert store.schema_revision() is None
        assert store.upgrade() == (None, HEAD_REVISION)
        with store.engine.connect() as conn:
            assert {"runs", "canaries", "samples", "attempts"} <= set(sa.inspect(conn).get_table_names())


def test_alembic_cli_uses_the_same_env(store_url: str) -> None:
    from alembic.config import main

    main(argv=["-c", str(REPO / "migrations" / "alembic.ini"), "-x", f"url={store_url}", "upgrade", "head"])
    with Store.open(store_url, migrate=False) as store:
        assert store.schema_revision() == HEAD_REVISION


def test_migrations_folder_prefers_the_bundled_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site" / "canary"
    package.mkdir(parents=True)
    monkeypatch.setattr(canary, "__file__", str(package / "__init__.py"))
    with pytest.raises(StoreError, match="cannot find the migrations folder"):
        store_migrate.migrations_dir()
    repo_copy = tmp_path / "site" / "migrations"
    repo_copy.mkdir()
    (repo_copy / "env.py").write_text("")
    assert store_migrate.migrations_dir() == repo_copy
    bundled = package / "_bundled" / "migrations"
    bundled.mkdir(parents=True)
    (bundled / "env.py").write_text("")
    assert store_migrate.migrations_dir() == bundled


def test_opening_an_up_to_date_store_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'canary.db'}"
    Store.open(url).close()
    code = (
        "import sys\n"
        "from canary.store import Store\n"
        f"s = Store.open({url!r})\n"
        "s.existing_keys(__import__('datetime').date(2025, 1, 1), ['m'])\n"
        "s.close()\n"
        "loaded = sorted(m for m in ('alembic', 'sqlalchemy.orm', 'anthropic', 'openai') if m in sys.modules)\n"
        "print(loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --------------------------------------------------------------------------- upgrading with data


REVISION_0002_TABLES = {"alerts", "alert_events", "notifications", "silences"}
ADDED_AFTER_0001 = {"attempts": {"excerpt"}}  # columns later revisions added to 0001's tables


def _write_at_0001(url: str) -> dict[str, object]:
    """Bring an empty database to revision 0001 and write two runs, a canary, three samples and
    their attempts into the tables as 0001 shaped them (reflected, not today's models)."""
    from datetime import UTC, date, datetime, timedelta

    from alembic import command

    from canary.records import Attempt, SampleResult, ScoreRecord, TurnRecord
    from canary.store.rows import attempt_values, sample_values

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.upgrade(store_migrate.alembic_config(conn), "0001")
    t0 = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
    with engine.begin() as conn:
        assert store_migrate.read_revision(conn) == "0001"
        shapes = sa.MetaData()
        shapes.reflect(conn)
        assert set(shapes.tables) == {"alembic_version", "runs", "canaries", "samples", "attempts"}
        tables = shapes.tables

        def insert(name: str, rows: list[dict[str, object]]) -> None:
            columns = set(tables[name].c.keys())
            later = ADDED_AFTER_0001.get(name, set())
            rows = [{k: v for k, v in row.items() if k not in later} for row in rows]
            assert all(set(row) == columns - {"id"} or set(row) == columns for row in rows), name
            conn.execute(tables[name].insert(), rows)

        runs = [
            {
                "id": f"run{n}",
                "day": date(2025, 3, n),
                "started_at": t0 + timedelta(days=n - 1),
                "finished_at": t0 + timedelta(days=n - 1, minutes=1),
                "status": "finished",
                "host": "h",
                "pid": 1,
                "canary_version": "0.1.0",
                "model_ids": '["opus"]',
                "n_planned": 2 if n == 1 else 1,
                "n_done": 0,
            }
            for n in (1, 2)
        ]
        insert("runs", runs)
        insert(
            "canaries",
            [
                {
                    "canary_id": "capital",
                    "canary_hash": "abc123",
                    "kind": "single",
                    "content": '{"id": "capital"}',
                    "first_seen": t0,
                }
            ],
        )
        keys = [(1, 0, "pass"), (1, 1, "fail"), (2, 0, "unavailable")]
        for day, index, outcome in keys:
            tries = [
                Attempt(
                    number=1,
                    started_at=t0,
                    latency_s=0.5,
                    status=529 if outcome == "unavailable" else 200,
                    code="overloaded" if outcome == "unavailable" else "ok",
                    retry_after_s=None,
                )
            ]
            sample = SampleResult(
                day=date(2025, 3, day),
                model_id="opus",
                canary_id="capital",
                canary_hash="abc123",
                sample_index=index,
                outcome=outcome,
                started_at=t0,
                finished_at=t0 + timedelta(seconds=2),  # type: ignore[arg-type]
                score=None if outcome == "unavailable" else float(outcome == "pass"),
                reason=f"was {outcome}",
                turns=[
                    TurnRecord(
                        index=1,
                        sent="Capital of France?",
                        reply="Paris ✓",
                        scores=[ScoreRecord("contains", outcome == "pass", 1.0, "ok")],
                    )
                ],
                attempts=tries,
            )
            values = sample_values(f"run{day}", sample)
            insert("samples", [{k: v for k, v in values.items() if k in tables["samples"].c}])
            sample_id = conn.execute(sa.text("SELECT max(id) FROM samples")).scalar_one()
            insert("attempts", attempt_values(sample_id, tries))
    engine.dispose()
    return {"keys": keys}


def test_upgrade_from_0001_with_data_keeps_it_and_adds_the_alert_tables(store_url: str) -> None:
    written = _write_at_0001(store_url)
    with Store.open(store_url, migrate=True) as store:
        assert store.migrated == ("0001", HEAD_REVISION)
        with store.engine.connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) >= REVISION_0002_TABLES
        rows = store.samples()
        assert [(r.day.day, r.sample_index, r.outcome) for r in rows] == written["keys"]
        assert [r.reason for r in rows] == ["was pass", "was fail", "was unavailable"]
        assert all(r.turns[0].reply == "Paris ✓" and len(r.attempts) == 1 for r in rows)
        assert rows[2].attempts[0].status == 529 and rows[2].score is None
        run = store.get_run("run1")
        assert run is not None and (run.status, run.n_planned) == ("finished", 2)
        assert run.started_at.tzinfo is not None
        # The upgraded database takes new writes of both generations of tables.
        new_run = store.start_run(day=rows[0].day, model_ids=["opus"], n_planned=1)
        store.finish_run(new_run, status="finished", n_done=0)
        with store.writing() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO silences (model_id, canary_id, until, reason, created_at) "
                    "VALUES ('opus', NULL, :t, 'upgrade test', :t)"
                ),
                {"t": run.started_at},
            )
        with store.reading() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM silences")).scalar_one() == 1


def test_empty_database_upgrades_to_head_with_every_table(store_url: str) -> None:
    with Store.open(store_url, migrate=True) as store:
        assert store.migrated == (None, HEAD_REVISION)
        with store.engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
    assert tables == set(metadata.tables) | {"alembic_version"}
    assert set(metadata.tables) >= REVISION_0002_TABLES  # so the comparison test covers 0002 too
