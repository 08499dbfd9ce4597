"""Notification delivery outcomes: `failed` for a permanent refusal or an expired notification,
next_attempt_at, so a temporary failure backs off across invocations, and first_attempt_at,
which the give-up age counts from.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite rebuilds the table to change its CHECK constraint.
    with op.batch_alter_table("notifications", recreate="auto") as batch:
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("first_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint("ck_notifications_status", type_="check")
        batch.create_check_constraint("ck_notifications_status", "status IN ('queued', 'sent', 'failed')")


def downgrade() -> None:
    # An older canary knows only queued and sent: a failed notification is queued again.
    op.execute("UPDATE notifications SET status = 'queued' WHERE status = 'failed'")
    with op.batch_alter_table("notifications", recreate="auto") as batch:
        batch.drop_constraint("ck_notifications_status", type_="check")
        batch.create_check_constraint("ck_notifications_status", "status IN ('queued', 'sent')")
        batch.drop_column("first_attempt_at")
        batch.drop_column("next_attempt_at")
