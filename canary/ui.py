"""Terminal output shared by commands."""

from __future__ import annotations

import os
import sys


def console():
    """A rich Console for stdout; off a terminal (cron mail, CI logs) tables get room to be
    read instead of rich's 80-column default."""
    from rich.console import Console

    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console()
    return Console(width=200)


def shown(text: object) -> str:
    """Untrusted text (model output, a served-model name, an alert summary built from one) for
    rich: bidi and control characters as `⟨U+202E⟩` markers, then rich markup escaped."""
    from rich.markup import escape

    from canary.textsafe import visible

    return escape(visible(str(text)))
