"""Say a gap in monitoring once: "no completed run since 2026-03-01: 2 days missed".

The `stale` alert (the dead man's switch) only fires while a check runs *without* a fresh run;
once a run has come back it is already resolved, so a host that was off for three days, a
timer that was disabled or a daemon that was down would never be mentioned. Two moments say it:

- the check after every run (`canary run`, `canary check`, the daemon's job): when the newest
  completed run follows the one before it by more than `signals.max_age_hours`;
- `canary schedule` starting (or waking) after a slot it can no longer run because it is past
  `schedule.misfire_grace_hours` (canary.schedule.daemon).

Either way the gap becomes a `gap` alert opened and resolved at once (so `canary alerts --all`
and the report list it) and one message through the channels. Its id comes from the last
completed run before the gap, so each gap is said exactly once, whichever moment sees it first
and however many runs and checks follow."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from canary.alerts.message import AlertEvent, AlertMessage, message_to_json
from canary.config.models import ProjectConfig
from canary.store.gaps import Completed, completed_runs, record_gap
from canary.store.store import Store


@dataclass(frozen=True)
class Gap:
    since: Completed  # the last completed run before the gap
    until: Completed | None  # the run that ended it; None: still open (a slot the daemon missed)
    now: datetime
    limit_hours: float
    note: str = ""  # why it is said now, e.g. the missed slot

    @property
    def hours(self) -> float:
        end = self.until.at if self.until else self.now
        return max(0.0, (end - self.since.at).total_seconds() / 3600)

    @property
    def days_missed(self) -> int:
        """Days with no completed run: those strictly between the two runs' days, or for an open
        gap every day after the last run up to today (whose slot was missed too)."""
        if self.until is None:
            return max(0, (self.now.date() - self.since.day).days)
        return max(0, (self.until.day - self.since.day).days - 1)

    @property
    def alert_id(self) -> str:
        return hashlib.sha256(f"gap|{self.since.at.isoformat()}".encode()).hexdigest()[:32]

    @property
    def summary(self) -> str:
        n = self.days_missed
        if n:
            return f"no completed run since {self.since.day}: {n} day{'s' if n != 1 else ''} missed"
        return f"no completed run for {self.hours:.0f} h since {self.since.at:%Y-%m-%d %H:%M} UTC"

    @property
    def detail(self) -> str:
        ended = (
            f"the run of {self.until.day} ended it"
            if self.until
            else "still open: the next scheduled run ends it"
        )
        text = (
            f"the last completed run before it was the run of {self.since.day} ({self.since.at:%Y-%m-%d %H:%M} UTC); "
            f"{ended}. The canary itself was not "
            "running (host off or asleep, timer or daemon stopped, runs failing): nothing was monitored "
            "in between"
        )
        return f"{self.note}; {text}" if self.note else text


def closed_gap(
    completed: Sequence[Completed], *, day: date, now: datetime, max_age_hours: float
) -> Gap | None:
    """The gap the newest completed run ended, if it is longer than `max_age_hours`.

    Only the newest gap, and only while it is news: never for a past day re-checked (a run for a
    later day exists), nor once the newest run is itself older than the limit (the `stale` alert
    speaks then)."""
    if any(c.day > day for c in completed):
        return None
    if len(completed) < 2:
        return None
    newest = completed[-1]
    before = [c for c in completed if c.at < newest.at]
    if not before or (now - newest.at).total_seconds() / 3600 > max_age_hours:
        return None
    gap = Gap(since=before[-1], until=newest, now=now, limit_hours=max_age_hours)
    return gap if gap.hours > max_age_hours else None


def _notify(config: ProjectConfig, store: Store, gap: Gap, channels: Sequence, *, day: date) -> bool:
    """Record the gap once and queue its message for every channel; True when new."""
    report_url = config.alerts.report_url
    event = AlertEvent(
        alert_id=gap.alert_id,
        event="gap",
        model_id="*",
        scope="all canaries",
        signal="gap",
        summary=gap.summary,
        today=f"{gap.hours:.0f} h without a completed run",
        baseline=f"limit {gap.limit_hours:g} h (signals.max_age_hours)",
        detail=gap.detail,
        day=day,
        report_url=report_url,
    )
    message = AlertMessage(
        id=uuid.uuid4().hex,
        title=f"canary: monitoring gap — {gap.summary}",
        events=(event,),
        created_at=gap.now,
        report_url=report_url,
    )
    return record_gap(
        store,
        alert_id=gap.alert_id,
        day=day,
        now=gap.now,
        summary=gap.summary,
        today=event.today or "",
        baseline=event.baseline or "",
        detail=gap.detail,
        message_id=message.id,
        channels=[c.name for c in channels],
        payload=message_to_json(message),
    )


def say_gap(
    config: ProjectConfig, store: Store, *, day: date | None, channels: Sequence, now: datetime | None = None
) -> Gap | None:
    """Before a check: queue the gap the newest run ended, once (the check then delivers it).
    Returns the gap when this call recorded it."""
    from canary.check import check_clock

    day, at = check_clock(day, now)
    gap = closed_gap(completed_runs(store), day=day, now=at, max_age_hours=config.signals.max_age_hours)
    if gap is None or not _notify(config, store, gap, channels, day=day):
        return None
    return gap


def say_missed_slot(
    config: ProjectConfig, store: Store, *, slot: datetime, channels: Sequence, now: datetime | None = None
) -> Gap | None:
    """The daemon found a slot it can no longer run: record the open gap and deliver it now.
    None when there is no completed run yet (nothing was being monitored) or it was already said."""
    from canary.alerts.outbox import deliver_pending

    at = now or datetime.now(UTC)
    completed = [c for c in completed_runs(store) if c.at <= at]
    if not completed:
        return None
    grace = config.schedule.misfire_grace_hours if config.schedule else 0
    note = (
        f"the run due at {slot.astimezone(UTC):%Y-%m-%d %H:%M} UTC was missed: {(at - slot).total_seconds() / 3600:.1f} h "
        f"late, past misfire_grace_hours ({grace:g} h)"
    )
    gap = Gap(since=completed[-1], until=None, now=at, limit_hours=config.signals.max_age_hours, note=note)
    if not _notify(config, store, gap, channels, day=at.date()):
        return None
    if channels:
        deliver_pending(store, channels, attempts=config.alerts.delivery_attempts)
    return gap
