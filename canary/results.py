"""`canary results`: read stored samples back, as a table or JSON.

Model text is untrusted: in the table it is shown through `textsafe.visible` (bidi and control
characters as `⟨U+202E⟩` markers) and rich-escaped; in JSON those characters are `\\uXXXX`
escapes, so neither output can reorder or recolour a terminal."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from datetime import date, datetime

import click

from canary.config.load import Project
from canary.errors import CanaryError
from canary.textsafe import json_visible


def jsonable(value):
    """Plain JSON types. A non-finite float (a server's `retry-after: inf`) becomes null:
    `Infinity` and `NaN` are not JSON, and every dump here uses allow_nan=False."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def print_results(
    project: Project, *, day: date | None, model_ids: Sequence[str], failures: bool, as_json: bool
) -> None:
    from canary.store import Store

    store = Store.open(project.store_url, base_dir=project.root)
    try:
        if day is not None:
            rows = store.samples(day=day, model_ids=model_ids or None)
            title = f"samples for {day}"
        else:
            last = store.last_run()
            if last is None:
                raise CanaryError("no runs recorded yet: run `canary run` first", exit_code=66)
            rows = store.samples(run_id=last.id, model_ids=model_ids or None)
            title = f"run {last.id} · {last.day} · {last.status}"
    finally:
        store.close()
    if failures:
        rows = [r for r in rows if r.outcome != "pass"]
    if as_json:
        click.echo(
            json_visible(
                json.dumps([jsonable(r) for r in rows], indent=2, ensure_ascii=False, allow_nan=False)
            )
        )
        return
    from rich.markup import escape
    from rich.table import Table

    from canary.ui import shown

    table = Table(title=title, title_justify="left")
    for name in (
        "model",
        "canary",
        "#",
        "outcome",
        "score",
        "latency s",
        "tokens out",
        "served model",
        "reason",
    ):
        table.add_column(name, overflow="fold")
    for r in rows:
        table.add_row(
            escape(r.model_id),
            escape(r.canary_id),
            str(r.sample_index),
            r.outcome + (" *" if r.sanitized else ""),
            "-" if r.score is None else f"{r.score:.2f}",
            f"{r.latency_s:.2f}",
            str(r.output_tokens),
            shown(r.served_model or "-"),
            shown((r.reason or "")[:160]),
        )
    from canary.ui import console

    console().print(table)
    if not rows:
        click.echo("no samples match")
    elif any(r.sanitized for r in rows):
        click.echo("* text the database cannot hold (lone surrogate, NUL) was stored as U+FFFD")
