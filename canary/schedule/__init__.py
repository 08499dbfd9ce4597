"""Run canary unattended: the `canary schedule` daemon (APScheduler) and cron/systemd recipes.

Kept import-light: canary.config imports canary.schedule.cron to validate `schedule:`, so this
package's __init__ must not pull in the pipeline, APScheduler or the SDKs. The public names
load on first use."""

from __future__ import annotations

from typing import Any

__all__ = ["cron_line", "next_run_times", "serve", "systemd_units"]

_HOMES = {
    "serve": "canary.schedule.daemon",
    "next_run_times": "canary.schedule.triggers",
    "systemd_units": "canary.schedule.recipes",
    "cron_line": "canary.schedule.recipes",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'canary.schedule' has no attribute {name!r}")
