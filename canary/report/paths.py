"""Where each page lives in the output folder, and relative links between pages.

Model and canary ids may hold `:` and `/` (`anthropic/claude`), which are not file names, and a
case-insensitive file system would merge `Opus` and `opus`: such ids get a sanitised, lowercase
name plus a short hash of the original, so two ids never share a file."""

from __future__ import annotations

import hashlib
import posixpath
import re

_PLAIN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def slug(identifier: str) -> str:
    if _PLAIN.match(identifier):
        return identifier
    cleaned = re.sub(r"[^a-z0-9._-]+", "_", identifier.lower()).strip("._-") or "id"
    return f"{cleaned}-{hashlib.sha256(identifier.encode()).hexdigest()[:8]}"


INDEX = "index.html"
ALERTS = "alerts.html"
COMPARE = "compare.html"


def model_page(model_id: str) -> str:
    return f"model/{slug(model_id)}.html"


def canary_page(model_id: str, canary_id: str) -> str:
    return f"canary/{slug(model_id)}/{slug(canary_id)}.html"


def root_of(page: str) -> str:
    """The relative prefix from `page` back to the folder root ("", "../", "../../")."""
    return "../" * page.count("/")


def link(from_page: str, to_page: str) -> str:
    """A relative href from one page to another (so the folder works from file:// and anywhere)."""
    anchor = ""
    if "#" in to_page:
        to_page, frag = to_page.split("#", 1)
        anchor = "#" + frag
    return posixpath.relpath(to_page, posixpath.dirname(from_page) or ".") + anchor
