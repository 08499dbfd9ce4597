"""Chart points as SVG markup. Every text is escaped with markupsafe's `escape`, the function
Jinja's autoescape calls; the numbers are formatted floats.

Why not a template macro per point: a report of 600 pages has a quarter of a million points,
and a macro call with four autoescaped fields per point cost `canary report` seconds; one
f-string per point costs a fraction of that."""

from __future__ import annotations

from markupsafe import Markup, escape

from canary.report.charts import Series, num
from canary.textsafe import visible


def points(series: Series) -> Markup:
    """Every point of one series, each with its tooltip (the `title` child)."""
    key = escape(series.key)
    out: list[str] = []
    if series.shape == "circle":
        for d in series.dots:
            out.append(
                f'<circle class="pt s-{key}" cx="{num(d.x)}" cy="{num(d.y)}" r="3.2">'
                f"<title>{escape(visible(d.title))}</title></circle>"
            )
    elif series.shape == "square":
        for d in series.dots:
            out.append(
                f'<rect class="pt s-{key}" x="{num(d.x - 3.2)}" y="{num(d.y - 3.2)}" width="6.4" height="6.4">'
                f"<title>{escape(visible(d.title))}</title></rect>"
            )
    elif series.shape == "diamond":
        for d in series.dots:
            out.append(
                f'<path class="pt s-{key}" d="M{num(d.x)} {num(d.y - 4.2)}l4.2 4.2l-4.2 4.2l-4.2 -4.2z">'
                f"<title>{escape(visible(d.title))}</title></path>"
            )
    return Markup("\n".join(out))
