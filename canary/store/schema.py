"""The store's tables, as SQLAlchemy Core objects on one MetaData.

Core, not the ORM: the hot path is one INSERT per sample and the ORM costs start-up time
for nothing. Alembic migrations (migrations/versions) must create exactly these tables; a
test compares them with `alembic.autogenerate.compare_metadata` on both dialects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from canary.records import OUTCOMES

# Every revision this code knows, oldest first. A database at a revision missing from
# here was written by a newer canary and is refused rather than misread.
REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004", "0005", "0006")
HEAD_REVISION = REVISIONS[-1]

RUN_STATUSES: tuple[str, ...] = ("running", "finished", "failed", "interrupted")

# Key columns are short identifiers; anything a model or a vendor sends back is Text,
# which takes a 1 MB answer on both SQLite and PostgreSQL.
ID = sa.String(255)
HASH = sa.String(64)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on both dialects.

    SQLite has no timestamp type and drops the offset, so values are normalised to UTC before
    they are written and stamped UTC when read; naive inputs are taken to be UTC already."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(32), nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("canary_version", sa.String(64), nullable=False),
    sa.Column("model_ids", sa.Text, nullable=False),  # JSON list
    sa.Column("n_planned", sa.Integer, nullable=False),
    sa.Column("n_done", sa.Integer, nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_runs"),
    sa.CheckConstraint(_in("status", RUN_STATUSES), name="ck_runs_status"),
    sa.Index("ix_runs_started_at", "started_at"),
)

canaries = sa.Table(
    "canaries",
    metadata,
    sa.Column("canary_id", ID, nullable=False),
    sa.Column("canary_hash", HASH, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("content", sa.Text, nullable=False),  # canonical JSON of the canary
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint("canary_id", "canary_hash", name="pk_canaries"),
)

# (day, model, canary, content hash, sample index): a rerun of the same day fills only the
# missing slots, and editing a canary (new hash) starts a new series.
SAMPLE_KEY: tuple[str, ...] = ("day", "model_id", "canary_id", "canary_hash", "sample_index")

samples = sa.Table(
    "samples",
    metadata,
    sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
    sa.Column("run_id", sa.String(32), nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("model_id", ID, nullable=False),
    sa.Column("canary_id", ID, nullable=False),
    sa.Column("canary_hash", HASH, nullable=False),
    sa.Column("sample_index", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("failed_turn", sa.Integer, nullable=True),
    sa.Column("n_attempts", sa.Integer, nullable=False),
    sa.Column("input_tokens", sa.Integer, nullable=False),
    sa.Column("output_tokens", sa.Integer, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=True),
    sa.Column("latency_s", sa.Float, nullable=False),
    sa.Column("served_model", sa.Text, nullable=True),
    sa.Column("fingerprint", sa.Text, nullable=True),
    sa.Column("stop_reason", sa.Text, nullable=True),
    sa.Column("error_code", sa.Text, nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=False),
    sa.Column("transcript", sa.Text, nullable=False),  # JSON list of turns
    # Some text was altered to be storable (lone surrogate / NUL -> U+FFFD): canary.textsafe.
    sa.Column("sanitized", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.PrimaryKeyConstraint("id", name="pk_samples"),
    sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_samples_run_id_runs"),
    sa.UniqueConstraint(*SAMPLE_KEY, name="uq_samples_key"),
    sa.CheckConstraint(_in("outcome", OUTCOMES), name="ck_samples_outcome"),
    sa.Index("ix_samples_model_id_day", "model_id", "day"),
    sa.Index("ix_samples_run_id", "run_id"),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("sample_id", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),  # position in SampleResult.attempts
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("turn", sa.Integer, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("latency_s", sa.Float, nullable=False),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("retry_after_s", sa.Float, nullable=True),
    sa.Column("excerpt", sa.Text, nullable=True),  # bad_response: the body's start, capped and redacted
    sa.PrimaryKeyConstraint("sample_id", "seq", name="pk_attempts"),
    sa.ForeignKeyConstraint(
        ["sample_id"], ["samples.id"], name="fk_attempts_sample_id_samples", ondelete="CASCADE"
    ),
)


# --------------------------------------------------------------------------- alerts (0002)

ALERT_STATES: tuple[str, ...] = ("firing", "resolved")
ALERT_EVENTS: tuple[str, ...] = ("opened", "notified", "repeated", "resolved", "silenced", "updated")
# failed (0003): refused for good, or still undeliverable after alerts.give_up_hours
NOTIFICATION_STATUSES: tuple[str, ...] = ("queued", "sent", "failed")

# One row per episode of a (model, scope, signal) key: opened when it starts firing, resolved
# when it recovers. A later episode of the same key is a new row.
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.String(32), nullable=False),
    sa.Column("model_id", ID, nullable=False),
    sa.Column("scope", ID, nullable=False),  # "*" for all canaries, else a canary id
    sa.Column("signal", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("opened_day", sa.Date, nullable=False),
    sa.Column("resolved_at", UTCDateTime, nullable=True),
    sa.Column("resolved_day", sa.Date, nullable=True),
    sa.Column("last_notified_at", UTCDateTime, nullable=True),
    sa.Column("notify_count", sa.Integer, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("today", sa.Text, nullable=True),
    sa.Column("baseline", sa.Text, nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("last_day", sa.Date, nullable=False),  # the newest day this episode was evaluated
    sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    sa.CheckConstraint(_in("state", ALERT_STATES), name="ck_alerts_state"),
    sa.Index("ix_alerts_key_state", "model_id", "scope", "signal", "state"),
)

# The lifecycle, for the report's alerts page and for people asking "when did this start".
alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
    sa.Column("alert_id", sa.String(32), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_alert_events"),
    sa.ForeignKeyConstraint(
        ["alert_id"], ["alerts.id"], name="fk_alert_events_alert_id_alerts", ondelete="CASCADE"
    ),
    sa.CheckConstraint(_in("event", ALERT_EVENTS), name="ck_alert_events_event"),
    sa.Index("ix_alert_events_alert_id", "alert_id"),
)

# The outbox: every notification is written here first, in the same transaction as the alert
# change that caused it, then delivered. One row per (message, channel).
notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("message_id", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # JSON of the AlertMessage; never a secret
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_attempt_at", UTCDateTime, nullable=True),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Column("claimed_by", sa.String(64), nullable=True),
    sa.Column("claimed_until", UTCDateTime, nullable=True),
    sa.Column(
        "next_attempt_at", UTCDateTime, nullable=True
    ),  # 0003: not retried before (backoff, Retry-After)
    sa.Column("first_attempt_at", UTCDateTime, nullable=True),  # 0003: the give-up age counts from here
    sa.PrimaryKeyConstraint("message_id", "channel", name="pk_notifications"),
    sa.CheckConstraint(_in("status", NOTIFICATION_STATUSES), name="ck_notifications_status"),
    sa.Index("ix_notifications_status", "status"),
)

silences = sa.Table(
    "silences",
    metadata,
    sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
    sa.Column("model_id", ID, nullable=False),
    sa.Column("canary_id", ID, nullable=True),  # None: every alert of the model
    sa.Column("until", UTCDateTime, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_silences"),
)


# --------------------------------------------------------------------------- model status (0003)

MODEL_STATES: tuple[str, ...] = ("ok", "setup", "rejected", "partial")

# What each run found about each model it was meant to call: `ok` (it answered), `setup` (it
# could not be called: its API key variable is unset), `rejected` (the service refused it: bad
# key, unknown model, quota; its other slots were skipped) or `partial` (some requests were
# refused). The check's `config` signal reads the newest row per model. `reason` names a
# variable or quotes the vendor's (redacted) error: never a secret.
model_status = sa.Table(
    "model_status",
    metadata,
    sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("model_id", ID, nullable=False),
    sa.Column("run_id", sa.String(32), nullable=True),  # None: nothing was run (every model lacked its key)
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("skipped", sa.Integer, nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_model_status"),
    sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_model_status_run_id_runs"),
    sa.CheckConstraint(_in("state", MODEL_STATES), name="ck_model_status_state"),
    sa.Index("ix_model_status_model_id_day", "model_id", "day"),
)
