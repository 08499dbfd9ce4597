"""Alerts: alert episodes, their lifecycle events, the notification outbox, silences.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("scope", sa.String(255), nullable=False),
        sa.Column("signal", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _ts("opened_at"),
        sa.Column("opened_day", sa.Date(), nullable=False),
        _ts("resolved_at", nullable=True),
        sa.Column("resolved_day", sa.Date(), nullable=True),
        _ts("last_notified_at", nullable=True),
        sa.Column("notify_count", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("today", sa.Text(), nullable=True),
        sa.Column("baseline", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.CheckConstraint("state IN ('firing', 'resolved')", name="ck_alerts_state"),
    )
    op.create_index("ix_alerts_key_state", "alerts", ["model_id", "scope", "signal", "state"])
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("alert_id", sa.String(32), nullable=False),
        _ts("at"),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_events"),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name="fk_alert_events_alert_id_alerts", ondelete="CASCADE"
        ),
        sa.CheckConstraint(
            "event IN ('opened', 'notified', 'repeated', 'resolved', 'silenced', 'updated')",
            name="ck_alert_events_event",
        ),
    )
    op.create_index("ix_alert_events_alert_id", "alert_events", ["alert_id"])
    op.create_table(
        "notifications",
        sa.Column("message_id", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("created_at"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("last_attempt_at", nullable=True),
        _ts("sent_at", nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        _ts("claimed_until", nullable=True),
        sa.PrimaryKeyConstraint("message_id", "channel", name="pk_notifications"),
        sa.CheckConstraint("status IN ('queued', 'sent')", name="ck_notifications_status"),
    )
    op.create_index("ix_notifications_status", "notifications", ["status"])
    op.create_table(
        "silences",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("canary_id", sa.String(255), nullable=True),
        _ts("until"),
        sa.Column("reason", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_silences"),
    )


def downgrade() -> None:
    op.drop_table("silences")
    op.drop_index("ix_notifications_status", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index("ix_alert_events_alert_id", table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_index("ix_alerts_key_state", table_name="alerts")
    op.drop_table("alerts")
