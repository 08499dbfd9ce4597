"""Shared fixtures: real PostgreSQL schemas, temp project folders.

With CI=true a missing PostgreSQL fails the suite instead of skipping it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

# Real SMTP and HTTP receivers (tests/receivers.py) as fixtures for every test module.
pytest_plugins = ("tests.receivers",)

PG_BASE = os.environ.get("CANARY_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}")
    pytest.skip(f"PostgreSQL not reachable: {reason}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose connections land in a fresh, private schema of the `test` database."""
    try:
        import sqlalchemy as sa
    except ImportError as exc:  # pragma: no cover
        _pg_unavailable(str(exc))
    schema = f"canary_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except Exception as exc:
        admin.dispose()
        _pg_unavailable(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(scope="module")
def server():
    """One unscripted simulator per test module; tests script it with `set_script`."""
    from canary.sim import SimScript, SimServer

    with SimServer(SimScript(behaviours={})).start() as running:
        yield running


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """Run a store test on a real SQLite file and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'canary.db'}"
    return request.getfixturevalue("pg_url")
