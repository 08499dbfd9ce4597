"""`canary export`: the stored results in formats other tools already read.

json / csv for spreadsheets and notebooks, OpenMetrics for a Prometheus node exporter's textfile
collector, JUnit XML so a CI job can gate on the latest day. Counts come from SQL aggregates
(one row per day x model x canary), never from loading every sample."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import tempfile
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

import sqlalchemy as sa

from canary.errors import CanaryError, SetupError
from canary.records import OUTCOMES
from canary.store.schema import alerts, runs, samples

if TYPE_CHECKING:
    from canary.config.load import Project
    from canary.store import Store
    from canary.store.rows import SampleRow

Format = Literal["json", "csv", "openmetrics", "junit"]
FORMATS: tuple[str, ...] = ("json", "csv", "openmetrics", "junit")
SCORED = ("pass", "fail")
EXCERPT_CHARS = 2000
ALL_MODELS = "*"  # an alert about the canary itself (canary.alerts.findings.ALL)

# The column order of json and csv rows; a stable contract for whoever reads the file.
COLUMNS: tuple[str, ...] = (
    "day",
    "model",
    "canary",
    "samples",
    "passes",
    "scored",
    "unavailable",
    "errors",
    "pass_rate",
    "output_tokens_per_task",
    "cost_usd",
    "latency_p95_s",
)


@dataclass(frozen=True)
class DailyRow:
    """One (day, model, canary). Quality counts pass/fail only; `errors` (error and
    harness_error) are setup problems, never the model's."""

    day: date
    model: str
    canary: str
    samples: int
    passes: int
    scored: int
    unavailable: int
    errors: int
    output_tokens: int  # over scored samples
    cost_usd: float | None  # over samples with a price; None when none had one
    latency_p95_s: float | None  # nearest-rank p95 over scored samples

    @property
    def pass_rate(self) -> float | None:
        return self.passes / self.scored if self.scored else None

    @property
    def output_tokens_per_task(self) -> float | None:
        return self.output_tokens / self.scored if self.scored else None

    def as_dict(self) -> dict[str, Any]:
        values = {
            "day": self.day.isoformat(),
            "model": self.model,
            "canary": self.canary,
            "samples": self.samples,
            "passes": self.passes,
            "scored": self.scored,
            "unavailable": self.unavailable,
            "errors": self.errors,
            "pass_rate": _round(self.pass_rate, 6),
            "output_tokens_per_task": _round(self.output_tokens_per_task, 3),
            "cost_usd": _round(self.cost_usd, 8),
            "latency_p95_s": _round(self.latency_p95_s, 6),
        }
        return {k: values[k] for k in COLUMNS}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# --------------------------------------------------------------------------- SQL


def _count(cond: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.sum(sa.case((cond, 1), else_=0))


def _p95_stmt(group: Sequence[sa.ColumnElement[Any]], where: Sequence[sa.ColumnElement[bool]]) -> sa.Select:
    """Nearest-rank p95 of scored latencies per group (the latency signal's definition): the
    smallest value whose cume_dist reaches 0.95. A window function, portable to both dialects."""
    c = samples.c
    share = sa.func.cume_dist().over(partition_by=list(group), order_by=c.latency_s).label("share")
    ranked = sa.select(*group, c.latency_s, share).where(c.outcome.in_(SCORED), *where).subquery()
    keys = [ranked.c[col.name] for col in group]
    return sa.select(*keys, sa.func.min(sa.case((ranked.c.share >= 0.95, ranked.c.latency_s)))).group_by(
        *keys
    )


def daily_rows(store: Store, model_ids: Collection[str], start: date, end: date) -> list[DailyRow]:
    """Every (day, model, canary) with samples in [start, end], ordered by day, model, canary."""
    c = samples.c
    where = [c.model_id.in_(list(model_ids)), c.day.between(start, end)]
    scored = c.outcome.in_(SCORED)
    group = [c.day, c.model_id, c.canary_id]
    counts = (
        sa.select(
            *group,
            sa.func.count(),
            _count(c.outcome == "pass"),
            _count(scored),
            _count(c.outcome == "unavailable"),
            _count(c.outcome.in_(("error", "harness_error"))),
            sa.func.sum(sa.case((scored, c.output_tokens), else_=0)),
            sa.func.sum(c.cost_usd),
            _count(c.cost_usd.is_not(None)),
        )
        .where(*where)
        .group_by(*group)
    )
    with store.reading() as conn:
        p95 = {(d, m, k): float(v) for d, m, k, v in conn.execute(_p95_stmt(group, where)) if v is not None}
        rows = [
            DailyRow(
                d,
                m,
                k,
                int(n),
                int(p),
                int(s),
                int(u),
                int(e),
                int(tok or 0),
                float(cost) if priced else None,
                p95.get((d, m, k)),
            )
            for d, m, k, n, p, s, u, e, tok, cost, priced in conn.execute(counts)
        ]
    return sorted(rows, key=lambda r: (r.day, r.model, r.canary))


def newest_day(store: Store, model_ids: Collection[str], up_to: date | None = None) -> date | None:
    c = samples.c
    stmt = sa.select(sa.func.max(c.day)).where(c.model_id.in_(list(model_ids)))
    if up_to is not None:
        stmt = stmt.where(c.day <= up_to)
    with store.reading() as conn:
        return conn.execute(stmt).scalar_one_or_none()


# --------------------------------------------------------------------------- json / csv


def write_json(rows: Sequence[DailyRow], out: TextIO) -> None:
    json.dump([r.as_dict() for r in rows], out, indent=2, ensure_ascii=False, allow_nan=False)
    out.write("\n")


def write_csv(rows: Sequence[DailyRow], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow(["" if v is None else v for v in r.as_dict().values()])


# --------------------------------------------------------------------------- openmetrics


def escape_label(value: str) -> str:
    """A label value per the exposition format: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


class _Families:
    """Gauges in the order they are declared; each family is written as one block."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, list[str]]] = {}

    def declare(self, name: str, help_text: str) -> None:
        self._families[name] = (help_text, [])

    def add(self, name: str, value: float, **labels: str) -> None:
        text = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
        self._families[name][1].append(
            f"{name}{{{text}}} {_number(value)}" if text else f"{name} {_number(value)}"
        )

    def write(self, out: TextIO) -> None:
        for name, (help_text, lines) in self._families.items():
            out.write(f"# HELP {name} {_escape_help(help_text)}\n# TYPE {name} gauge\n")
            for line in lines:
                out.write(line + "\n")
        out.write("# EOF\n")


def _epoch(at: datetime) -> float:
    return round(at.timestamp(), 3)


def write_openmetrics(store: Store, model_ids: Collection[str], day: date | None, out: TextIO) -> None:
    """Gauges for one day (the given one, else the newest with data): quality, volume, usage,
    plus the store-wide facts a dead man's switch needs (last run, firing alerts)."""
    fam = _Families()
    fam.declare("canary_day_timestamp_seconds", "UTC midnight of the day the per-day gauges describe.")
    fam.declare("canary_pass_rate", "Passes / scored samples of the day, per model and canary.")
    fam.declare("canary_samples_total", "Samples recorded for the day, per model and outcome.")
    fam.declare("canary_output_tokens_per_task", "Output tokens per scored sample of the day.")
    fam.declare("canary_latency_p95_seconds", "Nearest-rank p95 latency of the day's scored samples.")
    fam.declare(
        "canary_cost_per_correct_usd", "Cost of the day's priced samples / passes (models with a price)."
    )
    fam.declare(
        "canary_served_model_info", "What the vendor said served the day's scored samples (1 per pair)."
    )
    fam.declare(
        "canary_alerts_firing",
        "1 for each alert currently firing; model * signal stale: the canary itself is down.",
    )
    fam.declare("canary_last_run_timestamp_seconds", "When the newest completed run ended (Unix time).")
    fam.declare(
        "canary_last_run_success",
        "1 if the newest completed run finished, 0 if it failed or was interrupted.",
    )
    fam.declare("canary_runs_running", "Runs marked running (a crashed run stays so until the next one).")

    day = day or newest_day(store, model_ids)
    if day is not None:
        fam.add("canary_day_timestamp_seconds", _epoch(datetime.combine(day, time.min, tzinfo=UTC)))
        rows = daily_rows(store, model_ids, day, day)
        per_model: dict[str, dict[str, Any]] = {}
        for r in rows:
            if r.pass_rate is not None:
                fam.add("canary_pass_rate", r.pass_rate, model=r.model, canary=r.canary)
            m = per_model.setdefault(r.model, {o: 0 for o in (*OUTCOMES, "tokens", "cost", "priced")})
            for outcome, n in (
                ("pass", r.passes),
                ("fail", r.scored - r.passes),
                ("unavailable", r.unavailable),
            ):
                m[outcome] += n
            m["tokens"] += r.output_tokens
            if r.cost_usd is not None:
                m["cost"] += r.cost_usd
                m["priced"] += 1
        _add_usage(store, fam, model_ids, day, per_model)
    _add_store_facts(store, fam, model_ids)
    fam.write(out)


def _add_usage(
    store: Store, fam: _Families, model_ids: Collection[str], day: date, per_model: dict[str, dict[str, Any]]
) -> None:
    c = samples.c
    where = [c.model_id.in_(list(model_ids)), c.day == day]
    with store.reading() as conn:
        errors = {
            (m, o): int(n)
            for m, o, n in conn.execute(
                sa.select(c.model_id, c.outcome, sa.func.count())
                .where(*where, c.outcome.in_(("error", "harness_error")))
                .group_by(c.model_id, c.outcome)
            )
        }
        p95 = {m: float(v) for m, v in conn.execute(_p95_stmt([c.model_id], where)) if v is not None}
        served = conn.execute(
            sa.select(c.model_id, c.served_model, c.fingerprint)
            .where(*where, c.outcome.in_(SCORED))
            .distinct()
        ).all()
    for model in sorted(per_model):
        m = per_model[model]
        for outcome in OUTCOMES:
            fam.add(
                "canary_samples_total",
                m[outcome] + errors.get((model, outcome), 0),
                model=model,
                outcome=outcome,
            )
    for model in sorted(per_model):
        m = per_model[model]
        scored = m["pass"] + m["fail"]
        if scored:
            fam.add("canary_output_tokens_per_task", m["tokens"] / scored, model=model)
        if model in p95:
            fam.add("canary_latency_p95_seconds", p95[model], model=model)
        if m["priced"] and m["pass"]:
            fam.add("canary_cost_per_correct_usd", m["cost"] / m["pass"], model=model)
    for model, served_model, fingerprint in sorted(served, key=lambda r: tuple(v or "" for v in r)):
        fam.add(
            "canary_served_model_info",
            1,
            model=model,
            served_model=served_model or "",
            fingerprint=fingerprint or "",
        )


def _add_store_facts(store: Store, fam: _Families, model_ids: Collection[str]) -> None:
    a = alerts.c
    with store.reading() as conn:
        firing = conn.execute(
            # model "*" is the project-wide dead man's switch (`stale`: the canary itself is down)
            sa.select(a.model_id, a.signal, a.scope)
            .where(a.state == "firing", a.model_id.in_([*model_ids, ALL_MODELS]))
            .order_by(a.model_id, a.signal, a.scope)
        ).all()
        last = conn.execute(
            sa.select(runs.c.status, runs.c.started_at, runs.c.finished_at)
            .where(runs.c.status != "running")
            .order_by(runs.c.started_at.desc())
            .limit(1)
        ).first()
        running = conn.execute(
            sa.select(sa.func.count()).select_from(runs).where(runs.c.status == "running")
        ).scalar_one()
    for model, signal, scope in firing:
        fam.add("canary_alerts_firing", 1, model=model, signal=signal, scope=scope)
    if last is not None:
        status, started, finished = last
        fam.add("canary_last_run_timestamp_seconds", _epoch(finished or started))
        fam.add("canary_last_run_success", 1 if status == "finished" else 0)
    fam.add("canary_runs_running", int(running))


# --------------------------------------------------------------------------- junit

# XML 1.0 cannot carry these at all, escaped or not (NUL, most C0 controls, lone surrogates).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: str | None, limit: int | None = None) -> str:
    """Untrusted text made storable in XML: forbidden characters become U+FFFD, then truncated.
    Markup characters are left for ElementTree to escape."""
    text = _NOT_XML.sub("\ufffd", value or "")
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"… [{len(text) - limit} more characters]"
    return text


def reply_excerpt(sample: SampleRow) -> str:
    """The reply that failed (the first failing turn), else the last one, with its tool calls."""
    if not sample.turns:
        return ""
    turn = next((t for t in sample.turns if t.index == sample.failed_turn), sample.turns[-1])
    text = turn.reply
    for call in turn.tool_calls:
        text += f"\n[tool call] {call.name}({call.raw_arguments})"
    return f"turn {turn.index}: {text}" if len(sample.turns) > 1 else text


def write_junit(rows: Sequence[SampleRow], out: TextIO, *, title: str) -> None:
    """One testsuite per model, one testcase per sample. Built with ElementTree so model output
    can never close a tag or inject markup; unavailable is `skipped` (not a quality verdict)."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name=xml_text(title))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    by_model: dict[str, list[SampleRow]] = {}
    for r in rows:
        by_model.setdefault(r.model_id, []).append(r)
    for model in sorted(by_model):
        cases = by_model[model]
        counts = {
            "tests": len(cases),
            "failures": sum(r.outcome == "fail" for r in cases),
            "errors": sum(r.outcome in ("error", "harness_error") for r in cases),
            "skipped": sum(r.outcome == "unavailable" for r in cases),
        }
        for k, v in counts.items():
            totals[k] += v
        suite = ET.SubElement(
            root,
            "testsuite",
            name=xml_text(model),
            time=f"{sum(r.latency_s for r in cases):.3f}",
            timestamp=min(r.started_at for r in cases).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            **{k: str(v) for k, v in counts.items()},
        )
        for r in cases:
            case = ET.SubElement(
                suite,
                "testcase",
                name=xml_text(f"{r.canary_id}#{r.sample_index}"),
                classname=xml_text(model),
                time=f"{r.latency_s:.3f}",
            )
            _verdict(case, r)
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(ET.tostring(root, encoding="unicode"))
    out.write("\n")


def _verdict(case: Any, r: SampleRow) -> None:
    import xml.etree.ElementTree as ET

    if r.outcome == "fail":
        node = ET.SubElement(case, "failure", message=xml_text(r.reason, 500), type="fail")
        node.text = xml_text(reply_excerpt(r), EXCERPT_CHARS)
    elif r.outcome == "unavailable":
        why = r.error_message or r.error_code or r.reason
        ET.SubElement(
            case, "skipped", message=xml_text(f"service unavailable (not a quality verdict): {why}", 500)
        )
    elif r.outcome in ("error", "harness_error"):
        why = r.error_message or r.reason
        node = ET.SubElement(case, "error", message=xml_text(why, 500), type=r.outcome)
        node.text = xml_text(r.reason, EXCERPT_CHARS)


# --------------------------------------------------------------------------- entry points


def _models(project: Project, model_ids: Collection[str]) -> list[str]:
    known = [m.id for m in project.config.models]
    unknown = sorted(set(model_ids) - set(known))
    if unknown:
        raise SetupError(f"unknown --model {', '.join(unknown)} (canary.yaml has {', '.join(known)})")
    return list(model_ids) or known


def export(
    project: Project,
    store: Store,
    *,
    fmt: Format,
    out: TextIO,
    day: date | None = None,
    days: int = 30,
    model_ids: Collection[str] = (),
) -> None:
    """Write one export of the project's models (or `model_ids`) to `out`.

    json/csv: the `days` days ending at `day` (default: the newest day with data).
    openmetrics: gauges for `day` (default: the newest day with data).
    junit: every sample of `day` (default: the day of the latest run, so a rerun that filled
    two missing slots still reports the whole day)."""
    if fmt not in FORMATS:
        raise SetupError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    models = _models(project, model_ids)
    if fmt in ("json", "csv"):
        end = day or newest_day(store, models)
        rows = [] if end is None else daily_rows(store, models, end - timedelta(days=max(days, 1) - 1), end)
        (write_json if fmt == "json" else write_csv)(rows, out)
    elif fmt == "openmetrics":
        write_openmetrics(store, models, day, out)
    else:
        if day is None:
            last = store.last_run()
            if last is None:
                raise CanaryError("no runs recorded yet: run `canary run` first", exit_code=66)
            day = last.day
        rows_ = store.samples(day=day, model_ids=models)
        write_junit(rows_, out, title=f"canary {day}")


@contextmanager
def atomic_output(path: Path) -> Iterator[TextIO]:
    """A file that appears complete or not at all: written beside `path`, fsynced, renamed over
    it. A textfile collector scraping mid-write sees the old file, never half of the new one."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mode_for(path: Path) -> int:
    """Keep an existing file's mode; a new one gets 0666 minus the umask, like open() would
    (mkstemp's 0600 would hide the file from a node exporter running as another user)."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def export_to(
    project: Project,
    *,
    fmt: Format,
    out: str,
    day: date | None = None,
    days: int = 30,
    model_ids: Collection[str] = (),
    stdout: TextIO | None = None,
) -> None:
    """What the CLI calls: open the store, export to `out` (a path, written atomically, or `-`)."""
    import sys

    from canary.store import Store
    from canary.store.engine import parse_url

    target = parse_url(project.store_url, project.root)
    if target.path is not None and not target.path.exists():
        raise CanaryError(f"no database at {target.where} yet: run `canary run` first", exit_code=66)
    with Store.open(project.store_url, base_dir=project.root) as store:
        if out == "-":
            export(project, store, fmt=fmt, out=stdout or sys.stdout, day=day, days=days, model_ids=model_ids)
            return
        with atomic_output(Path(out)) as handle:
            export(project, store, fmt=fmt, out=handle, day=day, days=days, model_ids=model_ids)
