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
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
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
