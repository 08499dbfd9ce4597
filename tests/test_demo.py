"""`canary demo` as a newcomer runs it: a real process, the simulator, SQLite, the report."""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_shows_the_regression_the_outage_and_the_reroute(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "canary", "demo", "--days", "36", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    firing = re.findall(r"would notify FIRING\s+(.*)", text)
    assert any(f.startswith("opus-4.5 pass rate on all canaries") for f in firing), text[-3000:]
    assert any(f.startswith("gpt-5.1 availability") for f in firing)
    assert not any(f.startswith("gpt-5.1 pass rate") for f in firing)  # an outage is not a regression
    assert any(f.startswith("gateway-sonnet is answered by a different model") for f in firing)
    assert not any(f.startswith("opus-4.6") for f in firing)  # the successor is steady
    index = out / "index.html"
    assert index.is_file() and f"report: {index}" in text
    html = index.read_text(encoding="utf-8")
    for model in ("opus-4.5", "opus-4.6", "gpt-5.1", "gateway-sonnet"):
        assert model in html
