"""`canary report`: the store as a self-contained static HTML site (inline CSS and SVG, no script).

Import cost matters for the CLI's start-up, so jinja2 and numpy load only when a report is
written: `write_report` here is a thin wrapper over canary.report.render.write_report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from canary.config.load import Project
    from canary.store.store import Store

__all__ = ["write_report"]


def write_report(
    project: Project,
    store: Store,
    *,
    out: Path,
    days: int = 90,
    model_ids: Sequence[str] = (),
    today: date | None = None,
) -> Path:
    """Write the report for the `days` days up to `today` (UTC today by default) into `out`;
    returns the path of its index.html. Raises SetupError for an unknown model id."""
    from canary.report.render import write_report as write

    return write(project, store, out=out, days=days, model_ids=model_ids, today=today)
