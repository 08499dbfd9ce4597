"""Load canary.yaml and prompts/*.yaml into one validated Project, or fail with one line.

Every error names the file, the line, the field path and a hint; nothing here calls a model."""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from canary.config.coercion import check_model_fields, check_scorer_entry
from canary.config.kinds import canary_kind
from canary.config.models import (
    CANARY_KINDS,
    CanaryBase,
    ModelConfig,
    MultiTurnCanary,
    ProjectConfig,
    ToolCallCanary,
)
from canary.config.tools import normalise_tools
from canary.config.yamlfile import YamlDoc, format_loc, load_yaml
from canary.errors import EXIT_CONFIG, FileError, SetupError

CONFIG_NAME = "canary.yaml"


@dataclass
class LoadedCanary:
    """A validated canary with where it came from and its scorers bound to the registry."""

    canary: CanaryBase
    path: str
    line: int | None
    hash: str
    scorers: list[Any] = field(default_factory=list)  # BoundScorer

    @property
    def id(self) -> str:
        return self.canary.id


@dataclass
class Project:
    root: Path
    config_path: Path
    config: ProjectConfig
    doc: YamlDoc
    canaries: list[LoadedCanary]
    registry: Any  # ScorerRegistry

    def model(self, model_id: str) -> ModelConfig:
        for model in self.config.models:
            if model.id == model_id:
                return model
        raise KeyError(model_id)

    def display(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    @property
    def store_url(self) -> str:
        """CANARY_STORE, else canary.yaml's `store:` (see `store_url_of`)."""
        return store_url_of(self.config)


# --------------------------------------------------------------------------- pydantic -> one line


def _field_type(model: type[BaseModel], name: str) -> Any:
    info = model.model_fields.get(name)
    if info is None:
        for other in model.model_fields.values():
            if other.alias == name:
                info = other
                break
    return info.annotation if info else None


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside Optional[...] / list[...] / Annotated[...], if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _unwrap_model(arg)
        if found:
            return found
    return None


def _allowed_keys(root: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        model = _unwrap_model(_field_type(model, part))
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def validation_error(
    doc: YamlDoc, exc: ValidationError, model: type[BaseModel], prefix: tuple = ()
) -> FileError:
    """Turn the first pydantic error into `file:line field: problem (hint)`."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(part for part in err["loc"] if not (isinstance(part, str) and part.startswith("function-")))
    full = (*prefix, *loc)
    kind = err["type"]
    hint = None
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        problem = f"unknown key `{loc[-1]}`"
        hint = f"allowed here: {', '.join(allowed)}" if allowed else "remove it"
    elif kind == "missing":
        problem = "required field is missing"
        hint = f"add `{loc[-1]}:`" if loc else None
    elif kind == "literal_error":
        problem = err["msg"].replace("Input should be", "expected")
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        problem = "expected a mapping"
    elif kind == "list_type":
        problem = "expected a list"
    elif kind == "value_error":
        problem = err["msg"].removeprefix("Value error, ")
    else:
        problem = err["msg"][0].lower() + err["msg"][1:]
        if kind == "string_pattern_mismatch" and loc[-1] == "name" and "tools" in loc:
            problem = "not a valid tool name"
            hint = "use letters, digits, _ and - (at most 64 characters)"
        elif kind == "string_pattern_mismatch":
            problem = "not a valid identifier"
            hint = "use letters, digits and . _ - : / (at most 100 characters)"
    return FileError(doc.path, doc.line_of(full), format_loc(doc.written(full)) or None, problem, hint)


# --------------------------------------------------------------------------- loading


def find_config(path: str | os.PathLike | None) -> Path:
    if path:
        return Path(path)
    env = os.environ.get("CANARY_CONFIG")
    return Path(env) if env else Path.cwd() / CONFIG_NAME


def load_config(config_path: Path) -> tuple[ProjectConfig, YamlDoc]:
    if not config_path.exists():
        raise FileError(
            str(config_path),
            None,
            None,
            "no such config file",
            "run `canary init DIR` to create a project, or pass --config PATH",
            exit_code=66,
        )
    doc = load_yaml(config_path, str(config_path))
    if not isinstance(doc.data, dict):
        raise FileError(
            doc.path, 1, None, "expected a mapping at the top level", "see README: Config reference"
        )
    check_model_fields(doc, ProjectConfig)
    try:
        config = ProjectConfig.model_validate(doc.data)
    except ValidationError as exc:
        raise validation_error(doc, exc, ProjectConfig) from None
    seen: dict[str, int] = {}
    for index, model in enumerate(config.models):
        if model.id in seen:
            raise FileError(
                doc.path,
                doc.line_of(("models", index, "id")),
                f"models[{index}].id",
                f"duplicate model id `{model.id}` (first at models[{seen[model.id]}])",
                "model ids must be unique",
                exit_code=EXIT_CONFIG,
            )
        seen[model.id] = index
    return config, doc


def _canary_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_canary_file(path: Path, display: str) -> list[tuple[CanaryBase, YamlDoc, tuple]]:
    """One file holds one canary (a mapping) or several (a list of mappings)."""
    doc = load_yaml(path, display)
    if doc.data is None:
        return []
    if isinstance(doc.data, dict):
        entries: list[tuple[Any, tuple]] = [(doc.data, ())]
    elif isinstance(doc.data, list):
        entries = [(item, (i,)) for i, item in enumerate(doc.data)]
    else:
        raise FileError(
            display, 1, None, "expected a canary mapping or a list of them", "see README: Canary files"
        )
    out = []
    for data, prefix in entries:
        if not isinstance(data, dict):
            raise FileError(display, doc.line_of(prefix), format_loc(prefix) or None, "expected a mapping")
        kind = canary_kind(data, doc, prefix)
        model = CANARY_KINDS[kind]
        data = {**data, "kind": kind}  # `tools:` / `turns:` without `kind:` say it
        if model is ToolCallCanary:
            data = normalise_tools(data, doc, prefix)
        check_model_fields(doc, model, prefix, skip=("scorers",))  # scorers: by _bind_scorers
        try:
            canary = model.model_validate(data)
        except ValidationError as exc:
            raise validation_error(doc, exc, model, prefix) from None
        out.append((canary, doc, prefix))
    return out


def _bind_scorers(registry: Any, canary: CanaryBase, doc: YamlDoc, prefix: tuple) -> list[Any]:
    from canary.scoring.base import ScorerSpecError

    bound = []
    for index, entry in enumerate(canary.scorers):
        loc = (*prefix, "scorers", index)
        check_scorer_entry(doc, registry, loc, entry)
        try:
            scorer = registry.build(entry)
        except ScorerSpecError as exc:
            raise doc.error(
                (*loc, *exc.loc), exc.problem, exc.hint, exit_code=EXIT_CONFIG if exc.unknown else None
            ) from None
        if isinstance(canary, MultiTurnCanary):
            _check_turn_refs(scorer, canary, doc, loc)
        bound.append(scorer)
    return bound


def _check_turn_refs(scorer: Any, canary: MultiTurnCanary, doc: YamlDoc, loc: tuple) -> None:
    refs = scorer.turns if isinstance(scorer.turns, (list, tuple)) else []
    names = {t.name for t in canary.turns if t.name}
    for ref in refs:
        ok = (1 <= ref <= len(canary.turns)) if isinstance(ref, int) else ref in names
        if not ok:
            raise doc.error(
                (*loc, scorer.label, "turns"),
                f"no turn `{ref}` in this canary",
                f"turns are numbered 1..{len(canary.turns)}"
                + (f" or named {sorted(names)}" if names else ""),
            )


def load_project(config: str | os.PathLike | None = None) -> Project:
    from canary.scoring.registry import build_registry

    config_path = find_config(config).resolve()
    root = config_path.parent
    cfg, doc = load_config(config_path)
    prompts_dir = (root / cfg.prompts).resolve()
    if not prompts_dir.is_dir():
        raise FileError(
            doc.path,
            doc.line_of(("prompts",)),
            "prompts",
            f"folder {prompts_dir} does not exist",
            "create it and add canary files, or point `prompts:` at your canary folder",
            exit_code=EXIT_CONFIG,
        )
    scorers_dir = (root / cfg.scorers).resolve()
    registry = build_registry(scorers_dir if scorers_dir.is_dir() else None)
    project = Project(root, config_path, cfg, doc, [], registry)
    first_seen: dict[str, str] = {}
    for path in _canary_files(prompts_dir):
        display = project.display(path)
        for canary, cdoc, prefix in load_canary_file(path, display):
            line = cdoc.line_of((*prefix, "id"))
            where = f"{display}:{line}"
            if canary.id in first_seen:
                raise SetupError(
                    f"{where} id: duplicate canary id `{canary.id}` (also at {first_seen[canary.id]}) "
                    "(canary ids must be unique across prompts/)"
                )
            first_seen[canary.id] = where
            scorers = _bind_scorers(registry, canary, cdoc, prefix)
            project.canaries.append(LoadedCanary(canary, display, line, canary.content_hash(), scorers))
    return project


def missing_key_vars(models: list[ModelConfig]) -> list[tuple[ModelConfig, str]]:
    """Models whose API key variable is unset; names only, never values."""
    return [
        (m, m.key_env) for m in models if m.provider != "sim" and m.key_env and not os.environ.get(m.key_env)
    ]


def key_location(project: Project, model: ModelConfig) -> str:
    """`canary.yaml:LINE models[i].api_key_env`: where a model's key variable is named."""
    index = project.config.models.index(model)
    line = project.doc.line_of(("models", index, "api_key_env")) or project.doc.line_of(("models", index))
    return f"{project.doc.path}:{line} models[{index}].api_key_env"


def check_keys(project: Project, models: list[ModelConfig]) -> None:
    """`canary validate`: every model's key variable must be set (one line naming all that are not).

    `canary run` does not call this: there a missing variable stops only its own model."""
    missing = missing_key_vars(models)
    if missing:
        model, var = missing[0]
        others = "".join(f"; also {v} (model `{m.id}`)" for m, v in missing[1:])
        raise SetupError(
            f"{key_location(project, model)}: environment variable {var} is not set "
            f"(model `{model.id}` needs it: export {var}=... before running){others}"
        )


def store_url_of(config: ProjectConfig) -> str:
    """CANARY_STORE, else canary.yaml's `store:`; the mapping form's timeouts ride along as URL
    query parameters unless the URL already sets them."""
    store = config.store
    url = os.environ.get("CANARY_STORE") or store.url
    base, _, query = url.partition("?")
    given = {part.partition("=")[0] for part in query.split("&") if part}
    extra = [f"{name}={value:g}" for name, value in store.timeout_params().items() if name not in given]
    return url if not extra else f"{base}?{'&'.join(filter(None, [query, *extra]))}"
