"""Run the real `canary` CLI in-process and a test-owned simulator reached by base_url."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from canary.cli import main
from canary.config.load import load_project
from canary.config.models import ModelConfig, SimBehaviour
from canary.sim import SimServer, script_from_project


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> CliResult:
    capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def script_the_sim(server: SimServer, config_path: Path, behaviours: dict[str, SimBehaviour]) -> None:
    """Answer the project's canaries; each wire model name gets its behaviour."""
    project = load_project(config_path)
    models = [ModelConfig(id=name, provider="sim", model=name, sim=b) for name, b in behaviours.items()]
    server.set_script(script_from_project(models, [c.canary for c in project.canaries]))
    server.reset()


def remote_model(
    model_id: str,
    wire_model: str,
    server: SimServer,
    *,
    wire: str = "anthropic",
    key_env: str = "CANARY_TEST_KEY",
    extra: str = "",
) -> str:
    """A canary.yaml `models:` entry for a real provider pointed at the simulator by base_url."""
    provider, base = (
        ("anthropic", server.anthropic_base_url)
        if wire == "anthropic"
        else ("openai_compatible", server.openai_base_url)
    )
    entry = f"""\
    - id: {model_id}
      provider: {provider}
      model: {wire_model}
      base_url: {base}
      api_key_env: {key_env}
    """
    text = textwrap.dedent(entry)
    if extra:
        text += textwrap.indent(textwrap.dedent(extra), "  ")
    return text


def config_with(
    models: str,
    *,
    samples: int = 1,
    attempts: int = 3,
    stream: bool = True,
    max_retry_after_s: float = 1.0,
    concurrency: int = 8,
    store: str = "sqlite:///canary.db",
) -> str:
    return (
        f"store: {store}\n"
        "defaults:\n"
        f"  samples: {samples}\n"
        f"  concurrency: {concurrency}\n"
        "  timeout_s: 60\n"
        f"  stream: {'true' if stream else 'false'}\n"
        f"  retry: {{attempts: {attempts}, backoff_s: [0.001, 0.002, 0.004], max_retry_after_s: {max_retry_after_s}}}\n"
        "models:\n" + textwrap.indent(models, "  ")
    )
