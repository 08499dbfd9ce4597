"""Peak memory of `canary run` while four 100 MB answers arrive at once.

The simulator (in this process, so its own memory is not counted) serves the `huge` fault:
an answer of SIZE characters, written 16 KB at a time. A `canary run` child process asks four
samples concurrently, for each wire (Anthropic Messages, OpenAI chat completions), streamed
and not; the child's peak RSS is read with /usr/bin/time -v (ru_maxrss where that is missing).
A reference run with a one-line answer shows the process's baseline.

    python benchmarks/huge_replies.py [--size 100000000]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from canary.config.models import ModelConfig, SimBehaviour, SimFault  # noqa: E402
from canary.sim import SimServer, script_from_project  # noqa: E402

CANARY = """\
id: capital
prompt: What is the capital of France?
scorers:
  - contains: Paris
"""


def project(root: Path, url: str, wire: str, stream: bool, model: str) -> Path:
    provider = "anthropic" if wire == "anthropic" else "openai_compatible"
    (root / "prompts").mkdir(parents=True)
    (root / "prompts" / "c.yaml").write_text(CANARY)
    (root / "canary.yaml").write_text(
        textwrap.dedent(f"""\
        store: sqlite:///canary.db
        defaults: {{samples: 4, concurrency: 4, timeout_s: 600, stream: {str(stream).lower()}}}
        models:
          - {{id: m, provider: {provider}, model: {model}, base_url: "{url}", api_key_env: BENCH_KEY}}
        """)
    )
    return root / "canary.yaml"


def peak_rss_mb(config: Path) -> float:
    env = {**os.environ, "BENCH_KEY": "unused", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "canary", "run", "--config", str(config), "--no-check", "--quiet"]
    if shutil.which("time") or Path("/usr/bin/time").exists():
        done = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env, capture_output=True, text=True)
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
        if done.returncode != 0 or found is None:
            raise SystemExit(f"canary run failed ({done.returncode}): {done.stderr[-2000:]}")
        return int(found.group(1)) / 1024
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000_000)
    args = parser.parse_args()
    faults = {"huge": [SimFault(kind="huge", size=args.size)], "small": []}
    models = [
        ModelConfig(id=n, provider="sim", model=n, sim=SimBehaviour(faults=f)) for n, f in faults.items()
    ]
    with SimServer(script_from_project(models, [])) as sim, tempfile.TemporaryDirectory() as tmp:
        print(f"answer size {args.size:,} characters, 4 samples at once")
        for wire in ("anthropic", "openai"):
            url = sim.anthropic_base_url if wire == "anthropic" else sim.openai_base_url
            for stream in (True, False):
                for model in ("small", "huge"):
                    root = Path(tmp) / f"{wire}-{stream}-{model}"
                    mb = peak_rss_mb(project(root, url, wire, stream, model))
                    mode = "stream" if stream else "whole "
                    print(f"{wire:9} {mode} {model:5} answers: peak RSS {mb:6.0f} MB")


if __name__ == "__main__":
    main()
