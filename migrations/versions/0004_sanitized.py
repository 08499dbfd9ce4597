"""samples.sanitized: some text of the sample was altered to be storable (lone surrogate, NUL).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows were stored as sent (or failed to store): none of them was altered.
    op.add_column("samples", sa.Column("sanitized", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("samples") as batch:
        batch.drop_column("sanitized")
