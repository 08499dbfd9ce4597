"""Build throwaway canary projects on disk for tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

SIM_CONFIG = """\
store: sqlite:///canary.db
defaults:
  samples: 1
  concurrency: 8
  timeout_s: 60
  retry: {attempts: 3, backoff_s: [0.001, 0.002, 0.004], max_retry_after_s: 1}
models:
  - id: sim-a
    provider: sim
    protocol: anthropic
    model: sim-a
    price: {input_per_mtok: 3, output_per_mtok: 15}
  - id: sim-o
    provider: sim
    protocol: openai
    model: sim-o
"""

SINGLE = """\
id: capital
prompt: What is the capital of France?
scorers:
  - contains: {any: [Paris]}
sim:
  answer: The capital of France is Paris.
  wrong: It is Lyon.
"""


# A tool_call canary with a tool result fed back, answered correctly by the simulator.
WEATHER_TOOL = """\
id: weather
kind: tool_call
prompt: What's the weather in Paris?
tools:
  - name: get_weather
    parameters: {type: object, properties: {city: {type: string}}, required: [city]}
tool_results:
  get_weather: {temp_c: 18}
scorers:
  - tool_call: {name: get_weather, args: {city: Paris}}
  - contains: "18"
sim:
  call: {name: get_weather, arguments: {city: Paris}}
  answer: It is 18 °C in Paris.
"""


def write_project(root: Path, config: str = SIM_CONFIG, canaries: dict[str, str] | None = None) -> Path:
    """Write canary.yaml and prompts/*.yaml under root; returns the config path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "canary.yaml").write_text(textwrap.dedent(config), encoding="utf-8")
    prompts = root / "prompts"
    prompts.mkdir(exist_ok=True)
    for name, text in (canaries if canaries is not None else {"single.yaml": SINGLE}).items():
        (prompts / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return root / "canary.yaml"
