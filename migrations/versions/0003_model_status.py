"""Model status: what each run found about each model (answered, key variable unset, refused).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Feeds the `config` alert: a model that cannot be monitored is that model's problem, recorded
so that `canary check` can say so and resolve it when the model answers again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_status",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_status"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_model_status_run_id_runs"),
        sa.CheckConstraint("state IN ('ok', 'setup', 'rejected', 'partial')", name="ck_model_status_state"),
    )
    op.create_index("ix_model_status_model_id_day", "model_status", ["model_id", "day"])


def downgrade() -> None:
    op.drop_index("ix_model_status_model_id_day", table_name="model_status")
    op.drop_table("model_status")
