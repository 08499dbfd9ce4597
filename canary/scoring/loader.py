"""Finding scorers outside canary: a project's scorers/ folder and installed plugins.

scorers/*.py files are loaded by path, like pytest's conftest files: the folder is not a package
and is not put on sys.path, and each load gets a fresh module name, so two projects (or two
registries for one project) never share module state. Any failure becomes a one-line SetupError
naming the file or entry point: a user's broken scorer is a setup problem, not a canary crash."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import itertools
import re
import sys
import types
from pathlib import Path

from canary.errors import SetupError
from canary.scoring.base import Scorer
from canary.scoring.registry import ScorerRegistry, marked_scorers

ENTRY_POINT_GROUP = "canary.scorers"
_load_ids = itertools.count(1)  # only makes module names unique; holds no state


def load_local_scorers(registry: ScorerRegistry, scorers_dir: Path) -> list[str]:
    """Register the @scorer classes of every scorers_dir/*.py (sorted, `_*.py` skipped); returns their names."""
    scorers_dir = Path(scorers_dir)
    if not scorers_dir.exists():
        return []
    if not scorers_dir.is_dir():
        raise SetupError(f"{scorers_dir}: the scorers path is not a folder")
    added: list[str] = []
    for path in sorted(scorers_dir.glob("*.py")):
        if path.name.startswith("_"):
            continue
        shown = f"{scorers_dir.name}/{path.name}"
        module = _import_file(path, shown)
        for cls in marked_scorers(vars(module)):
            _register(registry, cls, shown, origin=shown)
            added.append(cls.name)
    return added


def _import_file(path: Path, shown: str) -> types.ModuleType:
    stem = re.sub(r"\W", "_", path.stem)
    name = f"_canary_scorers_{next(_load_ids)}_{stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SetupError(f"{shown}: cannot be loaded as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic and dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        raise SetupError(f"{shown}: {_describe(exc)}") from None
    return module


def load_entry_points(registry: ScorerRegistry) -> list[str]:
    """Register scorers from installed plugins; each entry point names a Scorer subclass or a module."""
    added: list[str] = []
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    for ep in sorted(eps, key=lambda e: (e.name, e.value)):
        dist = getattr(ep, "dist", None)
        shown = f"scorer plugin entry point `{ep.name}` ({ep.value}"
        shown += f", from {dist.name} {dist.version})" if dist is not None else ")"
        try:
            obj = ep.load()
        except (Exception, SystemExit) as exc:
            raise SetupError(f"{shown}: {_describe(exc)}") from None
        if isinstance(obj, types.ModuleType):
            classes = marked_scorers(vars(obj))
        elif isinstance(obj, type) and issubclass(obj, Scorer):
            classes = [obj]
        else:
            raise SetupError(f"{shown}: must name a Scorer subclass or a module, not {type(obj).__name__}")
        for cls in classes:
            _register(registry, cls, shown, origin=shown)
            added.append(cls.name)
    return added


def _register(registry: ScorerRegistry, cls: type[Scorer], shown: str, origin: str) -> None:
    try:
        registry.register(cls, origin=origin)
    except ValueError as exc:
        raise SetupError(str(exc)) from None
    except TypeError as exc:
        raise SetupError(f"{shown}: {exc}") from None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
