"""Throughput of `canary run` against the simulator in its own process.

Workload: 400 single-turn samples (20 canaries x 20 samples, one contains-scorer each, all
stored in SQLite) through the real SDK, simulator latency 200 ms, concurrency 100. The floor
is N / concurrency x latency = 0.8 s. Printed ratios against it:

  run       the run itself, in-process, imports already warm     target <= 1.5
  process   the whole `canary run` command, start-up included    target <= 2.5
  bare SDK  a bare SDK loop with a semaphore, for reference (not stored, not scored)

plus `canary --help` start-up (target <= 1 s) and the run process's peak RSS (target <= 100 MB).

    python benchmarks/throughput.py [--protocol openai|anthropic] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

N_CANARIES, N_SAMPLES, CONCURRENCY, LATENCY_MS = 20, 20, 100, 200
N = N_CANARIES * N_SAMPLES
FLOOR_S = N / CONCURRENCY * LATENCY_MS / 1000
CANARY_BIN = [sys.executable, "-m", "canary"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_projects(root: Path, port: int, protocol: str) -> tuple[Path, Path]:
    prompts = root / "prompts"
    prompts.mkdir(parents=True)
    for i in range(N_CANARIES):
        (prompts / f"c{i:02d}.yaml").write_text(
            textwrap.dedent(f"""\
            id: bench-{i:02d}
            prompt: "Benchmark question number {i}: what is {i} plus one?"
            samples: {N_SAMPLES}
            scorers:
              - contains: {{any: ["{i + 1}"]}}
            sim:
              answer: "The answer is {i + 1}."
            """)
        )
    common = f"""\
        prompts: prompts
        defaults:
          concurrency: {CONCURRENCY}
          global_concurrency: {CONCURRENCY}
          timeout_s: 30
          stream: false
          params: {{max_tokens: 64}}
          retry: {{attempts: 0, backoff_s: [0.01]}}
        """
    sim_cfg = root / "sim.yaml"
    sim_cfg.write_text(
        textwrap.dedent(common)
        + textwrap.dedent(f"""\
        store: sqlite:///sim-unused.db
        models:
          - {{id: bench, provider: sim, protocol: {protocol}, model: bench-model, sim: {{latency_ms: {LATENCY_MS}}}}}
        """)
    )
    provider = "anthropic" if protocol == "anthropic" else "openai_compatible"
    base = f"http://127.0.0.1:{port}" + ("" if protocol == "anthropic" else "/v1")
    run_cfg = root / "canary.yaml"
    run_cfg.write_text(
        textwrap.dedent(common)
        + textwrap.dedent(f"""\
        store: sqlite:///bench.db
        models:
          - {{id: bench, provider: {provider}, model: bench-model, base_url: "{base}", api_key_env: BENCH_FAKE_KEY}}
        """)
    )
    return sim_cfg, run_cfg


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"simulator exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("simulator did not start listening")


def timed_process(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int]:
    """Wall time and peak RSS (KiB) of one child process."""
    start = time.perf_counter()
    pid = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).pid
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with {os.waitstatus_to_exitcode(status)}")
    return elapsed, usage.ru_maxrss


BARE_LOOP = """
import asyncio, sys, time
t0 = time.perf_counter()
protocol, base = sys.argv[1], sys.argv[2]
async def main():
    sem = asyncio.Semaphore(%(c)d)
    if protocol == "anthropic":
        import anthropic
        client = anthropic.AsyncAnthropic(api_key="k", base_url=base, max_retries=0)
        call = lambda i: client.messages.create(model="bench-model", max_tokens=64,
            messages=[{"role": "user", "content": f"Benchmark question number {i %% 20}: what is {i %% 20} plus one?"}])
    else:
        import openai
        client = openai.AsyncOpenAI(api_key="k", base_url=base, max_retries=0)
        call = lambda i: client.chat.completions.create(model="bench-model", max_tokens=64,
            messages=[{"role": "user", "content": f"Benchmark question number {i %% 20}: what is {i %% 20} plus one?"}])
    async def one(i):
        async with sem:
            await call(i)
    await asyncio.gather(*(one(i) for i in range(%(n)d)))
asyncio.run(main())
""" % {"c": CONCURRENCY, "n": N}  # noqa: UP031


def in_process_run(run_cfg: Path, day: str) -> float:
    from datetime import date

    from canary.config.load import load_project
    from canary.pipeline import RunOptions, run

    project = load_project(run_cfg)
    start = time.perf_counter()
    report = run(project, RunOptions(as_of=date.fromisoformat(day), quiet=True))
    elapsed = time.perf_counter() - start
    outcomes = {s.outcome for s in report.stats.samples}
    if len(report.stats.samples) != N or outcomes != {"pass"}:
        raise SystemExit(f"in-process run produced {len(report.stats.samples)} samples, outcomes {outcomes}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--protocol", choices=["openai", "anthropic"], default="openai")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="canary-bench-"))
    port = free_port()
    sim_cfg, run_cfg = write_projects(root, port, args.protocol)
    env = {**os.environ, "BENCH_FAKE_KEY": "bench-not-a-real-key", "CANARY_STORE": ""}
    env.pop("CANARY_STORE")
    sim = subprocess.Popen(
        [*CANARY_BIN, "sim", "serve", "--config", str(sim_cfg), "--port", str(port)],
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, sim)
        os.environ["BENCH_FAKE_KEY"] = env["BENCH_FAKE_KEY"]
        base = f"http://127.0.0.1:{port}" + ("" if args.protocol == "anthropic" else "/v1")
        in_process_run(run_cfg, "2001-01-01")  # warm-up: imports, connections, SQLite file
        runs, procs, bares, rss = [], [], [], []
        for i in range(args.repeat):
            runs.append(in_process_run(run_cfg, f"2001-02-{i + 1:02d}"))
            elapsed, peak = timed_process(
                [*CANARY_BIN, "run", "--config", str(run_cfg), "--as-of", f"2001-03-{i + 1:02d}", "--quiet"],
                env,
                root,
            )
            procs.append(elapsed)
            rss.append(peak)
            bare, _ = timed_process([sys.executable, "-c", BARE_LOOP, args.protocol, base], env, root)
            bares.append(bare)
        helps = [timed_process([*CANARY_BIN, "--help"], env, root)[0] for _ in range(3)]
    finally:
        sim.terminate()
        sim.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)

    def row(name: str, values: list[float], target: float | None) -> None:
        best, med = min(values), statistics.median(values)
        verdict = "" if target is None else ("  ok" if med / FLOOR_S <= target else "  OVER")
        limit = "" if target is None else f"(target <= {target})"
        print(
            f"{name:<28} median {med:6.3f} s  ratio {med / FLOOR_S:5.2f}  best {best / FLOOR_S:5.2f} {limit}{verdict}"
        )

    print(
        f"throughput: {N} samples, concurrency {CONCURRENCY}, latency {LATENCY_MS} ms, "
        f"protocol {args.protocol}, floor N/c x latency = {FLOOR_S:.2f} s, {args.repeat} repeats"
    )
    row("run (in-process)", runs, 1.5)
    row("canary run (whole process)", procs, 2.5)
    row("bare SDK loop (reference)", bares, None)
    print(
        f"{'start-up (canary --help)':<28} median {statistics.median(helps):6.3f} s  (target <= 1.0 s)"
        + ("  ok" if statistics.median(helps) <= 1.0 else "  OVER")
    )
    peak_mb = max(rss) / 1024
    print(
        f"{'peak RSS of canary run':<28} {peak_mb:6.1f} MB  (target <= 100 MB)"
        + ("  ok" if peak_mb <= 100 else "  OVER")
    )


if __name__ == "__main__":
    main()
