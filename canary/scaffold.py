"""`canary init`: copy the shipped project (canary.yaml, prompts/, scorers/) into a folder.

The repository's own top level *is* that project; a wheel carries a copy under
canary/_bundled/project, so both an editable and a regular install find it."""

from __future__ import annotations

import shutil
from pathlib import Path

from canary.errors import CanaryError

PACKAGE_DIR = Path(__file__).resolve().parent


def template_root() -> Path:
    bundled = PACKAGE_DIR / "_bundled" / "project"
    if (bundled / "canary.yaml").is_file():
        return bundled
    repo = PACKAGE_DIR.parent
    if (repo / "canary.yaml").is_file() and (repo / "prompts").is_dir():
        return repo
    raise CanaryError("the shipped project template is missing from this installation (reinstall canary)")


def _template_files(root: Path) -> list[Path]:
    files = [root / "canary.yaml"]
    for folder in ("prompts", "scorers"):
        files += sorted(
            p
            for p in (root / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.name != ".gitkeep"
        )
    return files


def scaffold(target: Path, *, force: bool = False) -> list[Path]:
    root = template_root()
    files = _template_files(root)
    clashes = [f for f in files if (target / f.relative_to(root)).exists()]
    if clashes and not force:
        first = target / clashes[0].relative_to(root)
        raise CanaryError(
            f"{first} already exists; pass --force to overwrite the project files", exit_code=73
        )
    written = []
    for src in files:
        dest = target / src.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        written.append(dest)
    (target / "reports").mkdir(parents=True, exist_ok=True)
    return written
