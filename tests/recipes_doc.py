"""The cron and systemd recipes as the README shows them: what `canary schedule --print-*`
prints for this repository's canary.yaml, with machine paths replaced by /srv/canary and
/opt/canary/venv/bin. Used by tests/test_schedule_docs.py, and to regenerate the README."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from canary.schedule import cron_line, systemd_units
from canary.schedule.recipes import lock_path

REPO = Path(__file__).resolve().parents[1]
PROJECT = "/srv/canary"
BIN = "/opt/canary/venv/bin"


def documented(workdir: Path) -> tuple[str, str]:
    """(systemd units, cron line) for the repo's canary.yaml, normalised."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "canary.yaml", workdir / "canary.yaml")
    config = workdir / "canary.yaml"
    units = "".join(f"# ---- {name}\n{text}\n" for name, text in systemd_units(config, user="canary").items())
    cron = cron_line(config, machine_tz="UTC")

    def normal(text: str) -> str:
        text = text.replace(lock_path(config), lock_path(Path(PROJECT) / "canary.yaml"))
        text = text.replace(str(workdir), PROJECT)
        bindir = os.path.dirname(os.path.abspath(sys.executable))
        text = text.replace(f"{os.path.abspath(sys.executable)} -m canary", f"{BIN}/canary")
        return re.sub(re.escape(bindir) + r"/canary\b", f"{BIN}/canary", text)

    return normal(units).rstrip() + "\n", normal(cron).rstrip() + "\n"
