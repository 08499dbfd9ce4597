"""APScheduler triggers for a `schedule:` block, and the next run times `canary status` shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from canary.config.models import ScheduleConfig
from canary.schedule.cron import parse_cron, trigger_fields


def build_trigger(schedule: ScheduleConfig) -> Any:
    """One trigger firing at every time any expression matches, so a single job (and its
    max_instances=1) covers them all. See canary.schedule.cron for why not from_crontab."""
    from apscheduler.triggers.combining import OrTrigger
    from apscheduler.triggers.cron import CronTrigger

    tz = ZoneInfo(schedule.timezone)
    triggers = [
        CronTrigger(timezone=tz, **fields)
        for expr in schedule.expressions
        for fields in trigger_fields(parse_cron(expr))
    ]
    return triggers[0] if len(triggers) == 1 else OrTrigger(triggers)


def next_run_times(
    schedule_config: ScheduleConfig, now: datetime | None = None, count: int = 1
) -> list[datetime]:
    """The next `count` run times strictly after `now` (default: the wall clock), in the
    schedule's timezone. A naive `now` is taken as UTC."""
    trigger = build_trigger(schedule_config)
    at = now or datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    out: list[datetime] = []
    previous = at
    while len(out) < count:
        # previous == now asks for the first time after it (APScheduler adds a microsecond)
        nxt = trigger.get_next_fire_time(previous, previous)
        if nxt is None:
            break
        out.append(nxt)
        previous = nxt
    return out


LOOKBACKS = (
    timedelta(hours=2),
    timedelta(days=2),
    timedelta(days=9),
    timedelta(days=33),
    timedelta(days=400),
)


def previous_run_time(schedule_config: ScheduleConfig, now: datetime | None = None) -> datetime | None:
    """The newest run time at or before `now` (a naive `now` is UTC): the slot a daemon that
    starts now may have missed. APScheduler triggers only look forward, so this walks forward
    from a growing lookback until it passes `now` (a handful of steps for any real schedule)."""
    trigger = build_trigger(schedule_config)
    at = now or datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    for lookback in LOOKBACKS:
        found: datetime | None = None
        t = trigger.get_next_fire_time(None, at - lookback)
        while t is not None and t <= at:
            found = t
            t = trigger.get_next_fire_time(t, t + timedelta(microseconds=1))
        if found is not None:
            return found
    return None
