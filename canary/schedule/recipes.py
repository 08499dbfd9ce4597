"""cron and systemd recipes for a project's `schedule:` block, printed by
`canary schedule --print-cron` / `--print-systemd` for the operator to install.

Both run `canary run` and then `canary report` even when the run exits 1 (an alert firing is a
result that was already notified, and the report is most wanted exactly then). Overlap on one
host is prevented (flock, or systemd never starting a running oneshot twice); across hosts the
store's unique sample keys make each slot run once."""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
from pathlib import Path

from canary.config.load import load_config
from canary.config.models import ProjectConfig, ScheduleConfig
from canary.errors import SetupError
from canary.schedule.cron import on_calendar, parse_cron
from canary.schedule.daemon import config_path_for

ENV_FILE = "/etc/canary/env"
RANDOMIZED_DELAY = "5min"
UTC_NAMES = {"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu", "GMT", "Etc/GMT", "Etc/GMT0"}


def canary_command(python: str = sys.executable) -> list[str]:
    """The canary console script next to `python` (a venv's bin/), else `python -m canary`.
    Absolute, because cron's and systemd's PATH do not include a virtualenv."""
    python = os.path.abspath(python)  # not resolve(): a venv's python is a symlink to the base one
    script = Path(python).parent / "canary"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [python, "-m", "canary"]


def _project(project_path: str | os.PathLike | None) -> tuple[Path, ProjectConfig, ScheduleConfig]:
    config_path = config_path_for(project_path)
    config, doc = load_config(config_path)
    if config.schedule is None:
        raise SetupError(
            f"{doc.path}: no `schedule:` block to turn into a recipe "
            '(add e.g. `schedule: {cron: "0 6 * * *", timezone: UTC}`)'
        )
    return config_path, config, config.schedule


def secret_env_names(config: ProjectConfig) -> list[str]:
    """Names (never values) of the variables the project reads its secrets from."""
    from canary.alerts.channels import required_env

    names = [m.key_env for m in config.models if m.provider != "sim" and m.key_env]
    names += [var for _key, var in required_env(config.alerts)]
    return list(dict.fromkeys(names))


# --------------------------------------------------------------------------- systemd


def _unit_arg(arg: str) -> str:
    """Quote one ExecStart= argument: systemd's own quoting, plus %% for specifiers, $$ for
    variable expansion."""
    if not arg or any(ch.isspace() or ch in "\"'\\;" for ch in arg):
        arg = '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg.replace("%", "%%").replace("$", "$$")


def _exec(cmd: list[str]) -> str:
    return " ".join(_unit_arg(a) for a in cmd)


def _service_common(root: Path, user: str | None, secrets: list[str]) -> list[str]:
    lines = [f"User={user}"] if user else []
    lines.append(f"WorkingDirectory={str(root).replace('%', '%%')}")
    lines.append(f"# API keys and alert secrets go in {ENV_FILE} (chmod 600), one NAME=value per line:")
    lines += [f"#   {name}=..." for name in secrets] or ["#   (this project's models need no key)"]
    lines.append(f"EnvironmentFile=-{ENV_FILE}")
    lines.append("Environment=PYTHONUNBUFFERED=1")
    return lines


def systemd_units(
    project_path: str | os.PathLike | None, *, user: str | None = None, python: str = sys.executable
) -> dict[str, str]:
    """canary.service + canary.timer (a oneshot run on the schedule), and canary-scheduler.service
    (the `canary schedule` daemon instead). Install one of the two ways, not both."""
    config_path, config, schedule = _project(project_path)
    root = config_path.parent
    canary = canary_command(python)
    config_arg = ["--config", str(config_path)]
    common = _service_common(root, user, secret_env_names(config))
    calendars = [c for expr in schedule.expressions for c in on_calendar(parse_cron(expr), schedule.timezone)]

    service = "\n".join(
        [
            f"# canary: one run, then the report, for {config_path}. Started by canary.timer.",
            "[Unit]",
            f"Description=canary quality canaries ({root})",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=oneshot",
            *common,
            "# exit 1 means an alert is firing: already notified, and the report should still be written",
            "SuccessExitStatus=1",
            _line("ExecStart", _exec([*canary, "run", *config_arg, "--quiet"])),
            _line("ExecStart", _exec([*canary, "report", *config_arg])),
            "# stopping it is Ctrl-C: completed samples are kept, the rest is left for the next run",
            "KillSignal=SIGINT",
            "TimeoutStartSec=6h",
            "",
        ]
    )
    timer = "\n".join(
        [
            f"# canary: when to start canary.service; cron {'; '.join(schedule.expressions)} ({schedule.timezone})",
            "[Unit]",
            f"Description=canary schedule ({root})",
            "",
            "[Timer]",
            *(f"OnCalendar={c}" for c in calendars),
            "# a run missed while the machine was off starts at boot",
            "Persistent=true",
            f"RandomizedDelaySec={RANDOMIZED_DELAY}",
            "Unit=canary.service",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )
    daemon = "\n".join(
        [
            f"# canary: the `canary schedule` daemon for {config_path} (instead of canary.timer).",
            "[Unit]",
            f"Description=canary scheduler ({root})",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=simple",
            *common,
            _line("ExecStart", _exec([*canary, "schedule", *config_arg])),
            "Restart=on-failure",
            "RestartSec=30s",
            "# SIGTERM: no new runs, the run in flight is cancelled cleanly, exit 0",
            "KillSignal=SIGTERM",
            "TimeoutStopSec=10min",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )
    return {"canary.service": service, "canary.timer": timer, "canary-scheduler.service": daemon}


def _line(key: str, value: str) -> str:
    return f"{key}={value}"


# --------------------------------------------------------------------------- cron


def lock_path(config_path: Path) -> str:
    digest = hashlib.sha256(str(config_path).encode()).hexdigest()[:12]
    return f"/tmp/canary-{digest}.lock"


def machine_timezone() -> str | None:
    try:
        import tzlocal

        return tzlocal.get_localzone_name()
    except Exception:  # unknown: say CRON_TZ explicitly
        return None


def _same_zone(a: str | None, b: str) -> bool:
    return a is not None and (a == b or (a in UTC_NAMES and b in UTC_NAMES))


def cron_line(
    project_path: str | os.PathLike | None, *, python: str = sys.executable, machine_tz: str | None = "auto"
) -> str:
    """crontab lines (one per expression) running the project under `flock -n`, with CRON_TZ=
    when the schedule's timezone is not the machine's (`machine_tz`, detected by default)."""
    config_path, _config, schedule = _project(project_path)
    canary = " ".join(shlex.quote(a) for a in canary_command(python))
    config_arg = f"--config {shlex.quote(str(config_path))}"
    script = f"{canary} run {config_arg} --quiet; {canary} report {config_arg} >/dev/null"
    command = (
        f"cd {shlex.quote(str(config_path.parent))} && "
        f"flock -n {shlex.quote(lock_path(config_path))} sh -c {shlex.quote(script)}"
    ).replace("%", "\\%")  # an unescaped % ends a crontab command
    local = machine_timezone() if machine_tz == "auto" else machine_tz
    lines = [f"# canary: {config_path} (flock -n: a run still going makes the next one skip)"]
    if not _same_zone(local, schedule.timezone):
        lines.append(
            "# CRON_TZ applies to every line after it; not every cron honours it (cronie does): else use systemd"
        )
        lines.append(f"CRON_TZ={schedule.timezone}")
    lines += [f"{expr} {command}" for expr in schedule.expressions]
    return "\n".join(lines) + "\n"
