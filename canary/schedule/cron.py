"""Parse classic 5-field cron expressions into explicit value sets, and turn them into systemd
`OnCalendar=` lines and APScheduler CronTrigger arguments.

One parser feeds both back ends on purpose: APScheduler 3.x numbers weekdays from Monday (0)
while cron numbers them from Sunday (0), so `CronTrigger.from_crontab("0 6 * * 1-5")` would run
Tuesday to Saturday. Expanding every field to explicit values (and weekdays to names) removes
that trap, and it lets the daemon, `canary status` and the systemd timer agree exactly.

Cron's day rule is kept too: when both day-of-month and day-of-week are restricted (neither field
starts with `*`), cron runs on days matching EITHER. systemd and APScheduler AND them, so such an
expression becomes two calendar entries. Stdlib only: canary.config imports it to validate."""

from __future__ import annotations

from dataclasses import dataclass

MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
CRON_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]  # cron numbering: 0 = Sunday (7 too)
SYSTEMD_DAYS = {0: "Sun", 1: "Mon", 2: "Tue", 3: "Wed", 4: "Thu", 5: "Fri", 6: "Sat"}
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# (name, lowest, highest, names for the lowest value on)
FIELDS = [
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, CRON_DAYS),
]


class CronError(ValueError):
    """A cron expression canary cannot run; the message says which part and why."""


@dataclass(frozen=True)
class CronSpec:
    """A parsed expression: the set of values each field matches."""

    expr: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]  # day of month, 1-31
    months: frozenset[int]
    weekdays: frozenset[int]  # cron numbering, 0 = Sunday .. 6 = Saturday
    days_restricted: bool  # the day-of-month field does not start with `*`
    weekdays_restricted: bool

    def day_rules(self) -> list[tuple[frozenset[int], frozenset[int]]]:
        """(days of month, weekdays) pairs that are ANDed; more than one pair means OR."""
        all_days, all_weekdays = frozenset(range(1, 32)), frozenset(range(7))
        if self.days_restricted and self.weekdays_restricted:
            return [(self.days, all_weekdays), (all_days, self.weekdays)]
        return [(self.days, self.weekdays)]


def _number(text: str, name: str, names: list[str] | None) -> int:
    if names and text.lower() in names:
        return names.index(text.lower()) + (1 if name == "month" else 0)
    if not text.isdigit():
        raise CronError(
            f"{name}: `{text}` is not a number" + (f" or a name ({names[0]}..{names[-1]})" if names else "")
        )
    return int(text)


def _field(text: str, name: str, low: int, high: int, names: list[str] | None) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{name}: empty list item in `{text}`")
        if any(ch in part for ch in "?LW#"):
            raise CronError(f"{name}: `{part}` is not classic cron (no ?, L, W or #)")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{name}: step `{step_text}` must be a whole number above 0")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _number(first, name, names), _number(last, name, names)
            if start > end:
                raise CronError(f"{name}: range `{base}` runs backwards")
        else:
            start = _number(base, name, names)
            end = high if step_text else start  # `5/15` means 5-59/15, as in Vixie cron
        for value in (start, end):
            if not low <= value <= high:
                raise CronError(f"{name}: {value} is out of range {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


def parse_cron(expr: str) -> CronSpec:
    """Parse `minute hour day-of-month month day-of-week` (or an @daily-style macro)."""
    if not isinstance(expr, str) or not expr.strip():
        raise CronError("empty cron expression (e.g. `0 6 * * *` for 06:00 every day)")
    text = expr.strip()
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise CronError(f"not supported (use {', '.join(MACROS)} or five fields)")
        text = MACROS[text.lower()]
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"{len(parts)} fields; expected 5: minute hour day-of-month month day-of-week")
    sets = [
        _field(p, name, low, high, names) for p, (name, low, high, names) in zip(parts, FIELDS, strict=True)
    ]
    weekdays = frozenset(d % 7 for d in sets[4])  # 7 is Sunday too
    return CronSpec(
        expr=expr.strip(),
        minutes=frozenset(sets[0]),
        hours=frozenset(sets[1]),
        days=frozenset(sets[2]),
        months=frozenset(sets[3]),
        weekdays=weekdays,
        days_restricted=not parts[2].startswith("*"),
        weekdays_restricted=not parts[4].startswith("*"),
    )


# --------------------------------------------------------------------------- systemd OnCalendar


def _runs(values: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    return runs


def _calendar_field(values: frozenset[int], low: int, high: int, width: int) -> str:
    if values == frozenset(range(low, high + 1)):
        return "*"
    ordered = sorted(values)
    fmt = f"{{:0{width}d}}"
    if len(ordered) > 2:  # a progression that runs to the end: `start/step`
        step = ordered[1] - ordered[0]
        if step > 1 and ordered == list(range(ordered[0], high + 1, step)):
            return f"{fmt.format(ordered[0])}/{step}"
    return ",".join(
        fmt.format(a) if a == b else f"{fmt.format(a)}..{fmt.format(b)}" for a, b in _runs(ordered)
    )


def _calendar_weekdays(weekdays: frozenset[int]) -> str:
    if weekdays == frozenset(range(7)):
        return ""
    monday_first = sorted((d - 1) % 7 for d in weekdays)  # 0 = Monday, as systemd orders them
    names = [SYSTEMD_DAYS[(i + 1) % 7] for i in range(7)]
    return ",".join(names[a] if a == b else f"{names[a]}..{names[b]}" for a, b in _runs(monday_first)) + " "


def on_calendar(spec: CronSpec, timezone: str) -> list[str]:
    """systemd `OnCalendar=` values for the expression, with the timezone appended."""
    out = []
    for days, weekdays in spec.day_rules():
        date = f"*-{_calendar_field(spec.months, 1, 12, 2)}-{_calendar_field(days, 1, 31, 2)}"
        time = f"{_calendar_field(spec.hours, 0, 23, 2)}:{_calendar_field(spec.minutes, 0, 59, 2)}:00"
        out.append(f"{_calendar_weekdays(weekdays)}{date} {time} {timezone}")
    return out


# --------------------------------------------------------------------------- APScheduler


def _explicit(values: frozenset[int], low: int, high: int) -> str:
    if values == frozenset(range(low, high + 1)):
        return "*"
    return ",".join(str(v) for v in sorted(values))


def trigger_fields(spec: CronSpec) -> list[dict[str, str]]:
    """Keyword arguments for one APScheduler 3.x CronTrigger per day rule (weekdays by name)."""
    out = []
    for days, weekdays in spec.day_rules():
        week = "*" if weekdays == frozenset(range(7)) else ",".join(CRON_DAYS[d] for d in sorted(weekdays))
        out.append(
            {
                "minute": _explicit(spec.minutes, 0, 59),
                "hour": _explicit(spec.hours, 0, 23),
                "day": _explicit(days, 1, 31),
                "month": _explicit(spec.months, 1, 12),
                "day_of_week": week,
            }
        )
    return out
