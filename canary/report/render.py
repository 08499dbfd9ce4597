"""Render the site with Jinja2 and write it as a folder that works from file:// and anywhere.

Security: autoescape is on for every template (model output is hostile text), the pages carry
no script at all, and a Content-Security-Policy meta tag forbids loading anything, so even a
bug that let markup through could not run or fetch. SVG charts are inline markup, not images.
Every interpolated string also goes through `textsafe.visible` first (the environment's
`finalize`), so a bidi override or a NUL in a reply, a served-model name or a reason shows as
a marker such as `⟨U+202E⟩` instead of silently reordering the page."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

import canary
from canary.config.load import Project
from canary.errors import EXIT_IOERR, CanaryError
from canary.records import ToolCall
from canary.report import charts, fmt, paths, svg
from canary.report.build import Site, build_site
from canary.report.compare import COMPARE_DAYS
from canary.store.store import Store
from canary.textsafe import visible

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
TEMPLATES = Path(__file__).parent / "templates"
MANIFEST = ".canary-report-files"  # what the last write produced, so a rerun removes only its own stale pages
CLIP_CHARS = 6000  # a 1 MB answer must not make a 1 MB page


def clip(text: str | None, limit: int = CLIP_CHARS) -> str:
    text = text or ""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… [{len(text) - limit:,} more characters not shown]"


def tool_args(call: ToolCall) -> str:
    if call.arguments is None:
        return call.raw_arguments
    return json.dumps(call.arguments, indent=2, ensure_ascii=False, sort_keys=True)


def canary_json(canary: Any) -> str:
    return json.dumps(
        canary.model_dump(mode="json", exclude={"sim"}, exclude_defaults=True), indent=2, ensure_ascii=False
    )


def shown(value: Any) -> Any:
    """Jinja `finalize`: plain strings get visible markers; Markup (macros, SVG) and non-strings
    pass as they are. Autoescaping happens afterwards, as always."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value)
    return value


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        finalize=shown,
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every template, whatever its file name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fmt.FILTERS)
    env.filters["num"] = charts.num
    env.filters["model_path"] = paths.model_page
    env.globals.update(
        clip=clip,
        tool_args=tool_args,
        svg_points=svg.points,
        canary_json=canary_json,
        canary_path=paths.canary_page,
        version=canary.__version__,
        csp=CSP,
        compare_days=COMPARE_DAYS,
    )
    return env


class FolderWriter:
    """Writes pages under `out`, then removes pages the previous report wrote and this one did not
    (a dropped model), never anything else in the folder."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.written: list[str] = []

    def write(self, page: str, html: str) -> None:
        target = self.out / page
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, target)
        self.written.append(page)

    def finish(self) -> None:
        manifest = self.out / MANIFEST
        previous = manifest.read_text(encoding="utf-8").split("\n") if manifest.is_file() else []
        keep = set(self.written)
        root = self.out.resolve()
        for page in previous:
            if not page or page in keep:
                continue
            target = (self.out / page).resolve()
            if target.is_relative_to(root) and target.suffix == ".html" and target.is_file():
                target.unlink()
                for parent in target.parents:
                    if parent == root or any(parent.iterdir()):
                        break
                    parent.rmdir()
        manifest.write_text("\n".join(sorted(keep)) + "\n", encoding="utf-8")


def _pages(site: Site) -> list[tuple[str, str, dict[str, Any]]]:
    out: list[tuple[str, str, dict[str, Any]]] = [
        (paths.INDEX, "index.html.j2", {"title": "Overview"}),
        (paths.COMPARE, "compare.html.j2", {"title": "Compare models"}),
        (paths.ALERTS, "alerts.html.j2", {"title": "Alerts"}),
    ]
    for model in site.models:
        out.append((model.path, "model.html.j2", {"title": model.model.id, "model_page": model}))
        for pair in model.pairs:
            out.append(
                (pair.path, "canary.html.j2", {"title": f"{pair.canary.id} on {pair.model.id}", "pair": pair})
            )
    return out


def _href(page: str) -> Callable[[str], str]:
    return lambda target: paths.link(page, target)


def render_site(site: Site, writer: FolderWriter) -> None:
    env = environment()
    cfg = site.project.config
    common = {
        "site": site,
        "detect": cfg.detect,
        "signals": cfg.signals,
        "report_url": cfg.alerts.report_url,
        "repeat_hours": cfg.alerts.repeat_hours,
        "model_paths": {m.model.id: m.path for m in site.models},
        "pair_paths": {(p.model.id, p.canary.id): p.path for p in site.pairs},
    }
    templates: dict[str, jinja2.Template] = {}
    for page, name, extra in _pages(site):
        template = templates.get(name) or templates.setdefault(name, env.get_template(name))
        writer.write(page, template.render(common | extra | {"page": page, "href": _href(page)}))


def write_report(
    project: Project,
    store: Store,
    *,
    out: Path,
    days: int = 90,
    model_ids: Sequence[str] = (),
    today: date | None = None,
) -> Path:
    """Write the static report for the `days` days up to `today` (UTC today by default) into
    `out`; returns the path of index.html."""
    day = today or datetime.now(UTC).date()
    site = build_site(project, store, days=days, model_ids=model_ids, today=day)
    out = Path(out)
    writer = FolderWriter(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        render_site(site, writer)
        writer.finish()
    except OSError as exc:
        raise CanaryError(
            f"cannot write the report to {out}: {exc.strerror or exc}", exit_code=EXIT_IOERR
        ) from None
    return out / paths.INDEX
