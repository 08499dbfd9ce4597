"""The results store (SQLAlchemy Core on SQLite or PostgreSQL, schema managed by Alembic)."""

from canary.store.rows import RunRow, SampleRow
from canary.store.schema import HEAD_REVISION
from canary.store.store import Store
from canary.store.writer import SampleWriter

__all__ = ["HEAD_REVISION", "RunRow", "SampleRow", "SampleWriter", "Store"]
