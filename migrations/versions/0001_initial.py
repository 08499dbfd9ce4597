"""Initial schema: runs, canaries, samples, attempts.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out in full rather than imported from canary.store.schema, so this revision keeps
creating the same tables when the models move on; a test checks the two still agree at head.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOMES = "outcome IN ('pass', 'fail', 'unavailable', 'error', 'harness_error')"
RUN_STATUSES = "status IN ('running', 'finished', 'failed', 'interrupted')"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        _ts("started_at"),
        _ts("finished_at", nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("canary_version", sa.String(64), nullable=False),
        sa.Column("model_ids", sa.Text(), nullable=False),
        sa.Column("n_planned", sa.Integer(), nullable=False),
        sa.Column("n_done", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.CheckConstraint(RUN_STATUSES, name="ck_runs_status"),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])

    op.create_table(
        "canaries",
        sa.Column("canary_id", sa.String(255), nullable=False),
        sa.Column("canary_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        _ts("first_seen"),
        sa.PrimaryKeyConstraint("canary_id", "canary_hash", name="pk_canaries"),
    )

    op.create_table(
        "samples",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("canary_id", sa.String(255), nullable=False),
        sa.Column("canary_hash", sa.String(64), nullable=False),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("failed_turn", sa.Integer(), nullable=True),
        sa.Column("n_attempts", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("latency_s", sa.Float(), nullable=False),
        sa.Column("served_model", sa.Text(), nullable=True),
        sa.Column("fingerprint", sa.Text(), nullable=True),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("error_code", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        _ts("started_at"),
        _ts("finished_at"),
        sa.Column("transcript", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_samples"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_samples_run_id_runs"),
        sa.UniqueConstraint(
            "day", "model_id", "canary_id", "canary_hash", "sample_index", name="uq_samples_key"
        ),
        sa.CheckConstraint(OUTCOMES, name="ck_samples_outcome"),
    )
    op.create_index("ix_samples_model_id_day", "samples", ["model_id", "day"])
    op.create_index("ix_samples_run_id", "samples", ["run_id"])

    op.create_table(
        "attempts",
        sa.Column("sample_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        _ts("started_at"),
        sa.Column("latency_s", sa.Float(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("retry_after_s", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("sample_id", "seq", name="pk_attempts"),
        sa.ForeignKeyConstraint(
            ["sample_id"], ["samples.id"], name="fk_attempts_sample_id_samples", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("attempts")
    op.drop_index("ix_samples_run_id", table_name="samples")
    op.drop_index("ix_samples_model_id_day", table_name="samples")
    op.drop_table("samples")
    op.drop_table("canaries")
    op.drop_index("ix_runs_started_at", table_name="runs")
    op.drop_table("runs")
