"""Alembic environment for canary's store.

Two ways in:
- programmatically (`Store.upgrade`, `canary db upgrade`): the caller hands over an open
  connection, already inside the transaction that must hold the whole upgrade, via
  `config.attributes["connection"]`;
- the `alembic` CLI, for developers: `alembic -c migrations/alembic.ini -x url=sqlite:///canary.db
  upgrade head` (or CANARY_STORE_URL); the engine is built by canary itself, so the URL is
  normalised and SQLite gets the same pragmas as at run time.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context

from canary.store.schema import metadata

config = context.config
target_metadata = metadata


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        # True on SQLite too: canary's engine emits BEGIN itself, so SQLite DDL is transactional.
        transactional_ddl=True,
        compare_type=True,
    )


def _cli_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("CANARY_STORE_URL")
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the store URL: alembic -x url=sqlite:///canary.db … (or set CANARY_STORE_URL)")
    return url


def run_offline() -> None:
    from canary.store.engine import parse_url

    target = parse_url(_cli_url())
    context.configure(
        url=target.url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=target.dialect == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    from canary.store.engine import WRITE_OPTION, create_engine, parse_url

    engine = create_engine(parse_url(_cli_url()))
    try:
        with engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():  # one transaction for the whole command, as in Store.upgrade
                _configure(conn)
                context.run_migrations()
    finally:
        engine.dispose()


if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_offline()
else:
    run_online()
