"""How long `write_report` takes, and how much memory, on a year of a large deployment.

The store: 365 days x 20 models x 30 canaries x 5 samples = 1,095,000 samples (with
transcripts), plus runs, canary contents and a few alerts, in a SQLite file generated once with
bulk inserts and cached in the temp folder (`--rebuild` regenerates it). The report is then
written in a fresh child process, so its peak RSS is the report's own (imports included).

    python benchmarks/report_scale.py            # limits: <= 15 s, <= 500 MB peak RSS
    python benchmarks/report_scale.py --days 365 --repeat 3

Exit status 1 when a limit is exceeded."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

DAYS, MODELS, CANARIES, SAMPLES = 365, 20, 30, 5
LAST_DAY = date(2025, 12, 31)
LIMIT_S, LIMIT_MB = 15.0, 500.0
CACHE = Path(tempfile.gettempdir()) / f"canary-report-scale-v1-{DAYS}x{MODELS}x{CANARIES}x{SAMPLES}"


def write_project(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "prompts").mkdir(exist_ok=True)
    lines = ["store: sqlite:///canary.db", "models:"]
    for m in range(MODELS):
        lines += [f"  - id: model-{m:02d}", "    provider: sim", f"    model: vendor-model-{m:02d}"]
        if m % 2 == 0:
            lines.append("    price: {input_per_mtok: 3, output_per_mtok: 15}")
        if m % 7 == 3:
            lines.append(f"    retires: {LAST_DAY + timedelta(days=10 + m)}")
    (root / "canary.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for c in range(CANARIES):
        (root / "prompts" / f"c{c:02d}.yaml").write_text(
            f'id: canary-{c:02d}\nprompt: "Question number {c}: which consistency guarantee is violated?"\n'
            "scorers:\n  - contains: {any: [read-your-writes]}\n",
            encoding="utf-8",
        )


def generate(root: Path) -> None:
    """Fill the store: per model a base quality, a two-week regression, an outage day and a
    served-model change; per canary one content edit half-way through the year."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from canary.config.load import load_project
    from canary.records import ScoreRecord, TurnRecord
    from canary.store import Store
    from canary.store import alerting as db
    from canary.store.rows import encode_turns

    write_project(root)
    project = load_project(root / "canary.yaml")
    db_path = root / "canary.db"
    if db_path.exists():
        db_path.unlink()
    with Store.open(f"sqlite:///{db_path}", migrate=True) as store:
        store.save_canaries((c.id, c.hash, "single", c.canary.model_dump_json()) for c in project.canaries)
        store.save_canaries(
            (c.id, "0ld" + c.hash[3:], "single", c.canary.model_dump_json()) for c in project.canaries
        )
        with store.writing() as conn:
            for k, m in enumerate(("model-00", "model-05")):
                at = f"{LAST_DAY - timedelta(days=3 + k)} 06:00:00.000000"
                alert_id = db.new_alert(
                    conn,
                    (m, "canary-01", "quality"),
                    now=_dt(at),
                    day=LAST_DAY - timedelta(days=3),
                    summary=f"{m} pass rate on canary-01 dropped",
                    today="40%",
                    baseline="95%",
                    detail="",
                )
                db.add_event(conn, alert_id, at=_dt(at), day=LAST_DAY - timedelta(days=3), event="opened")

    rng = np.random.default_rng(7)
    days = [LAST_DAY - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    edit_day = DAYS // 2
    good = encode_turns(
        [
            TurnRecord(
                1,
                "Question: which guarantee is violated?",
                "That is read-your-writes. " * 8,
                output_tokens=120,
                scores=[ScoreRecord("contains", True, 1.0, "found")],
            )
        ]
    )
    bad = encode_turns(
        [
            TurnRecord(
                1,
                "Question: which guarantee is violated?",
                "Monotonic reads, probably. " * 8,
                output_tokens=150,
                scores=[ScoreRecord("contains", False, 0.0, "not found")],
            )
        ]
    )
    con = sqlite3.connect(db_path)
    con.execute("PRAGMA synchronous=OFF")
    runs = [
        (
            f"run{i:04d}",
            str(d),
            f"{d} 06:00:00.000000",
            f"{d} 06:20:00.000000",
            "finished",
            "bench",
            1,
            "0.1.0",
            "[]",
            0,
            0,
        )
        for i, d in enumerate(days)
    ]
    con.executemany("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)", runs)
    columns = (
        "run_id, day, model_id, canary_id, canary_hash, sample_index, outcome, score, reason, failed_turn, "
        "n_attempts, input_tokens, output_tokens, cost_usd, latency_s, served_model, fingerprint, stop_reason, "
        "error_code, error_message, started_at, finished_at, transcript"
    )
    sql = f"INSERT INTO samples ({columns}) VALUES ({', '.join('?' * 23)})"
    hashes = [(c.id, c.hash, "0ld" + c.hash[3:]) for c in project.canaries]
    for m in range(MODELS):
        model_id = f"model-{m:02d}"
        quality = 0.85 + 0.14 * rng.random()
        drop_start = int(rng.integers(60, DAYS - 20))
        outage = int(rng.integers(0, DAYS))
        switch = int(rng.integers(100, DAYS))
        priced = m % 2 == 0
        p = np.full((DAYS, CANARIES, SAMPLES), quality)
        p[drop_start : drop_start + 14] -= 0.3
        passed = rng.random(p.shape) < p
        latency = rng.lognormal(0.0, 0.35, p.shape)
        rows = []
        for t, day in enumerate(days):
            run_id, ds = runs[t][0], str(day)
            served = f"vendor-model-{m:02d}" + ("-2025" if t >= switch else "")
            for c, (canary_id, now_hash, old_hash) in enumerate(hashes):
                chash = now_hash if t >= edit_day else old_hash
                for i in range(SAMPLES):
                    if t == outage and i < 4:
                        rows.append(
                            (
                                run_id,
                                ds,
                                model_id,
                                canary_id,
                                chash,
                                i,
                                "unavailable",
                                None,
                                "529 overloaded",
                                None,
                                4,
                                0,
                                0,
                                None,
                                0.0,
                                None,
                                None,
                                None,
                                "overloaded",
                                "529 overloaded",
                                f"{ds} 06:00:00.000000",
                                f"{ds} 06:01:00.000000",
                                "[]",
                            )
                        )
                        continue
                    ok = bool(passed[t, c, i])
                    tokens = 120 if ok else 150
                    rows.append(
                        (
                            run_id,
                            ds,
                            model_id,
                            canary_id,
                            chash,
                            i,
                            "pass" if ok else "fail",
                            1.0 if ok else 0.0,
                            "" if ok else "contains: not found",
                            None if ok else 1,
                            1,
                            40,
                            tokens,
                            (40 * 3 + tokens * 15) / 1e6 if priced else None,
                            float(latency[t, c, i]),
                            served,
                            "fp_1",
                            "end_turn",
                            None,
                            None,
                            f"{ds} 06:00:00.000000",
                            f"{ds} 06:00:05.000000",
                            good if ok else bad,
                        )
                    )
        con.executemany(sql, rows)
        con.commit()
        print(f"  {model_id}: {len(rows):,} samples", flush=True)
    con.execute("ANALYZE")
    con.commit()
    con.close()
    (root / "complete").write_text("ok\n", encoding="utf-8")


def _dt(text: str):
    from datetime import UTC, datetime

    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def measure(root: Path, days: int) -> None:
    """Child process: write the report once, print seconds and peak RSS as JSON."""
    started = time.perf_counter()
    from canary.config.load import load_project
    from canary.report import write_report
    from canary.store import Store

    project = load_project(root / "canary.yaml")
    out = root / "report"
    with Store.open(f"sqlite:///{root / 'canary.db'}") as store:
        t0 = time.perf_counter()
        index = write_report(project, store, out=out, days=days, today=LAST_DAY)
        report_s = time.perf_counter() - t0
    pages = sum(1 for _ in out.rglob("*.html"))
    size = sum(p.stat().st_size for p in out.rglob("*.html"))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": report_s,
                "process_seconds": time.perf_counter() - started,
                "peak_mb": peak_mb,
                "pages": pages,
                "bytes": size,
                "index": str(index),
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=90, help="report window (default 90, as `canary report`)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; the median is reported")
    parser.add_argument("--rebuild", action="store_true", help="regenerate the cached store")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, args.days)
        return 0

    if args.rebuild or not (CACHE / "complete").exists():
        shutil.rmtree(CACHE, ignore_errors=True)
        print(f"generating {DAYS * MODELS * CANARIES * SAMPLES:,} samples into {CACHE} ...", flush=True)
        t0 = time.perf_counter()
        generate(CACHE)
        print(
            f"generated in {time.perf_counter() - t0:.1f} s ({(CACHE / 'canary.db').stat().st_size / 1e6:.0f} MB)"
        )
    else:
        print(f"using the cached store {CACHE} (--rebuild to regenerate)")

    results = []
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for _ in range(args.repeat):
        proc = subprocess.run(
            [sys.executable, __file__, "--measure", str(CACHE), "--days", str(args.days)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, file=sys.stderr)
            return 2
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    seconds = statistics.median(r["seconds"] for r in results)
    peak = statistics.median(r["peak_mb"] for r in results)
    last = results[-1]
    print(
        f"store: {DAYS} days x {MODELS} models x {CANARIES} canaries x {SAMPLES} samples = "
        f"{DAYS * MODELS * CANARIES * SAMPLES:,} samples; report window {args.days} days"
    )
    print(f"pages written: {last['pages']} ({last['bytes'] / 1e6:.1f} MB), {last['index']}")
    print(
        f"write_report: {seconds:6.2f} s   limit {LIMIT_S:.0f} s    ratio {seconds / LIMIT_S:.2f}"
        f"   (whole process incl. imports: {last['process_seconds']:.2f} s)"
    )
    print(f"peak RSS:     {peak:6.0f} MB  limit {LIMIT_MB:.0f} MB  ratio {peak / LIMIT_MB:.2f}")
    return 0 if seconds <= LIMIT_S and peak <= LIMIT_MB else 1


if __name__ == "__main__":
    sys.exit(main())
