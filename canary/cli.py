"""The `canary` command. Heavy modules are imported inside commands to keep start-up fast."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import click

from canary import __version__
from canary.errors import EXIT_CONFIG, EXIT_FIRING, EXIT_SOFTWARE, EXIT_USAGE, CanaryError

CONTEXT = {"auto_envvar_prefix": "CANARY", "help_option_names": ["-h", "--help"], "show_default": True}

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="CANARY_CONFIG",
    show_envvar=True,
    help="Path to canary.yaml (default: ./canary.yaml).",
)


def _day(_ctx, _param, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"`{value}` is not a date: use YYYY-MM-DD") from None


def _load(config_path: str | None):
    from canary.config.load import load_project

    return load_project(config_path)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="canary")
def cli() -> None:
    """Scheduled quality canaries for hosted LLMs.

    Replays known-answer prompts (prompts/*.yaml) against every model in canary.yaml,
    scores the answers, and stores every sample, so that a silent regression shows up as
    a falling pass rate instead of a surprised user. Service failures (429, 5xx, 529,
    timeouts) are retried and recorded as availability, never as quality.

    Every option can also be set from the environment as CANARY_<COMMAND>_<OPTION>
    (e.g. CANARY_RUN_SAMPLES=1); --config also as CANARY_CONFIG, the store URL as CANARY_STORE.
    """


# --------------------------------------------------------------------------- init


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False), default=".")
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def init(directory: str, force: bool) -> None:
    """Create a canary project in DIRECTORY: canary.yaml, prompts/, scorers/, reports/.

    The new project runs as-is against the built-in simulator (no API keys needed)."""
    from canary.scaffold import scaffold

    written = scaffold(Path(directory), force=force)
    click.echo(f"created {len(written)} files in {Path(directory).resolve()}")
    click.echo(f"next: cd {directory} && canary run && canary results --last")


# --------------------------------------------------------------------------- validate


@cli.command()
@config_option
def validate(config_path: str | None) -> None:
    """Check canary.yaml and every canary file without calling any model.

    Exit 65 for a malformed file, 78 for duplicate ids, an unknown scorer or a missing
    API key variable (all missing variables are named; `canary run` would still run the
    models that have their key)."""
    from canary.config.load import check_keys

    project = _load(config_path)
    check_keys(project, project.config.models)
    kinds: dict[str, int] = {}
    for c in project.canaries:
        kinds[c.canary.kind] = kinds.get(c.canary.kind, 0) + 1
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"
    click.echo(
        f"ok: {len(project.canaries)} canaries ({detail}), {len(project.config.models)} models "
        f"({', '.join(m.id for m in project.config.models)})"
    )


# --------------------------------------------------------------------------- run


@cli.command()
@config_option
@click.option("--model", "model_ids", multiple=True, metavar="ID", help="Only this model (repeatable).")
@click.option("--canary", "canary_ids", multiple=True, metavar="ID", help="Only this canary (repeatable).")
@click.option("--tag", "tags", multiple=True, metavar="T", help="Only canaries with this tag (repeatable).")
@click.option(
    "--samples", type=click.IntRange(1, 1000), help="Samples per canary per model (overrides the files)."
)
@click.option(
    "--as-of", "as_of", callback=_day, metavar="YYYY-MM-DD", help="Record the run under this UTC day."
)
@click.option("--force", is_flag=True, help="Re-run slots already recorded for the day and replace them.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--no-check", is_flag=True, help="Do not run `canary check` for the day afterwards.")
@click.option(
    "--wait", is_flag=True, help="If another run holds the database, wait for it instead of exiting 75."
)
@click.option(
    "--shard",
    "shard",
    metavar="i/N",
    help="Run only this host's deterministic share of the (model, canary) pairs.",
)
def run(
    config_path, model_ids, canary_ids, tags, samples, as_of, force, quiet, as_json, no_check, wait, shard
) -> None:
    """Replay every canary against every model and store each sample.

    Only slots missing for the day are run (a second run the same day fills gaps);
    --force re-runs them. Then checks the day (as `canary check`) unless --no-check.
    A model that cannot be used (its API key variable unset, or the service refuses it: bad
    key, unknown model name, quota) stops only itself: the other models run, the check runs,
    and a `config` alert says which model cannot be monitored and why.
    Exit 0 when every model answered and nothing fires, 1 when an alert fires, 78 when a
    model's API key variable is unset, 69 when a model was rejected, 70 when a scorer crashed or
    the database refused a sample (stored as harness_error), 75 when another run holds the
    database (use --wait). With `heartbeat:` in canary.yaml, pings its URL at the start and with
    success or failure at the end (never changing the exit code); the check says a gap in
    monitoring since the previous completed run, once."""
    from canary.heartbeat import Heartbeat
    from canary.pipeline import RunOptions
    from canary.pipeline import run as run_pipeline

    project = _load(config_path)
    heartbeat = Heartbeat.from_config(
        project.config.heartbeat, os.environ, warn=lambda line: click.echo(f"canary: {line}", err=True)
    )
    report = None
    try:
        if not no_check:
            from canary.alerts.channels import build_channels

            channels = build_channels(
                project.config.alerts, os.environ, base_dir=project.root
            )  # a bad alert setup fails before the run
        from canary.plan import Shard

        options = RunOptions(
            tuple(model_ids),
            tuple(canary_ids),
            tuple(tags),
            samples,
            as_of,
            force,
            quiet,
            wait=wait,
            shard=Shard.parse(shard) if shard else None,
        )
        report = run_pipeline(project, options, on_start=heartbeat.run_started)
        firing = _print_run(project, report, None if no_check else channels, as_json=as_json)
        code = _run_exit_code(report, firing)
    except BaseException as exc:  # the heartbeat says /fail, then the error goes on as before
        heartbeat.run_failed(exc, report)
        raise
    heartbeat.run_finished(code, report, None if no_check else int(firing))
    if code:
        sys.exit(code)


def _print_run(project, report, channels, *, as_json: bool) -> bool:
    """Print the run's summary and check the day (unless channels is None: --no-check); True
    when an alert is firing."""
    from canary.summary import render_table, summarize

    summaries = summarize(report.stats.samples)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "run_id": report.run_id,
                    "day": report.day.isoformat(),
                    "planned": report.planned,
                    "models": [s.as_dict() for s in summaries],
                    "trouble": {
                        k: {"message": v.message, "state": v.state, "skipped": v.skipped}
                        for k, v in report.trouble.items()
                    },
                },
                indent=2,
            )
        )
    elif report.planned == 0 and not report.trouble:
        click.echo(
            f"nothing to run: all {report.already} slots for {report.day} are recorded (--force re-runs them)"
        )
    elif report.planned:
        from canary.ui import console

        console().print(
            render_table(summaries, f"run {report.run_id} · {report.day} · {report.planned} samples")
        )
    from canary.textsafe import visible

    for model_id, trouble in sorted(report.trouble.items()):
        skipped = f" ({trouble.skipped} samples skipped)" if trouble.skipped else ""
        hint = f" ({trouble.hint})" if trouble.hint else ""
        message = visible(trouble.message)  # the server's own words: bidi and control characters shown
        click.echo(f"canary: model {model_id}: {message}{skipped}{hint}", err=True)
    for (model_id, canary_id, _, index), why in report.unstorable:
        click.echo(
            f"canary: {model_id} / {canary_id} sample {index} {why}; stored as harness_error", err=True
        )
    if channels is None:
        return False
    return _check_and_print(project, report.day, channels, as_json=False, quiet=as_json)


def _run_exit_code(report, firing: bool) -> int:
    if report.trouble_exit_code is not None:
        return report.trouble_exit_code  # 78: a model's key variable is unset; 69: a model was refused
    crashed = {s.error_code for s in report.stats.samples if s.outcome == "harness_error"}
    if "scorer" in crashed:
        click.echo("canary: a scorer crashed; see `canary results --last` (outcome harness_error)", err=True)
    if "harness" in crashed:
        click.echo(
            "canary: canary itself failed on a sample (a bug: please report it); see "
            "`canary results --last` (outcome harness_error)",
            err=True,
        )
    if any(s.outcome == "harness_error" for s in report.stats.samples):
        return EXIT_SOFTWARE
    return EXIT_FIRING if firing else 0


# --------------------------------------------------------------------------- check / alerts


def _check_and_print(project, day, channels, *, as_json: bool, quiet: bool = False) -> bool:
    """Run the check, print what it did; True when an alert is firing."""
    from canary.check import run_check
    from canary.gap import say_gap
    from canary.store import Store

    with Store.open(project.store_url, base_dir=project.root) as store:
        gap = say_gap(
            project.config, store, day=day, channels=channels
        )  # queued here, delivered by the check
        report = run_check(project, store, as_of=day, channels=channels, said_gap=gap is not None)
    if gap is not None and not as_json:
        click.echo(f"canary: monitoring gap: {gap.summary}", err=True)
    if as_json:
        click.echo(json.dumps(_check_json(report), indent=2, ensure_ascii=False))
    elif not quiet:
        _print_check(report)
    return bool(report.firing)


def _check_json(report) -> dict:
    from canary.results import jsonable

    firing = [{**jsonable(a), "silenced": False} for a in report.firing]
    firing += [{**jsonable(a), "silenced": True} for a in report.silenced]
    return {
        "day": report.day.isoformat(),
        "history_of": report.history_of.isoformat() if report.history_of else None,
        "events": jsonable(report.events),
        "firing": firing,
        "held": [jsonable(f) for f in report.findings if f.status == "held" and "held:" in f.summary],
        "not_judged": [jsonable(f) for f in report.findings if f.warming is not None],
        "was_firing": [jsonable(f) for f in report.findings if report.history_of and f.status == "firing"],
        "delivery": {
            "sent": [{"channel": c, "message_id": m} for c, m in report.delivery.sent],
            "failed": [{"channel": c, "message_id": m, "error": e} for c, m, e in report.delivery.failed],
            "gave_up": [{"channel": c, "message_id": m, "error": e} for c, m, e in report.delivery.gave_up],
            "deferred": report.delivery.deferred,
            "channel_events": jsonable(report.delivery.channel_events),
        },
    }


def _print_check(report) -> None:
    from canary.check import not_judged_lines
    from canary.ui import console
    from canary.ui import shown as escape  # model-derived text: markers for bidi, then escaped

    out = console()
    muted = f" ({len(report.silenced)} silenced)" if report.silenced else ""
    now = " now" if report.history_of else ""  # a history check changes nothing: these are today's
    out.print(
        f"check {report.day}: {len(report.firing) + len(report.silenced)} alert(s) firing{now}{muted}, "
        f"{len(report.events)} new notification event(s)"
    )
    if report.history_of:
        out.print(
            f"  [yellow]HISTORY[/]  {report.history_of} is already judged: {report.day} is history, so no "
            "alert was opened, resolved or notified"
        )
        for f in report.findings:
            if f.status == "firing":
                out.print(f"  [yellow]WAS FIRING[/] {escape(f.summary)}")
    for e in report.events:
        style = {"firing": "bold red", "repeat": "red", "resolved": "green"}[e.event]
        out.print(f"  [{style}]{e.event.upper():<8}[/] {escape(e.summary)}")
    held = [f for f in report.findings if f.status == "held" and "held:" in f.summary]
    for f in held[:10]:
        out.print(f"  [yellow]HELD[/]     {escape(f.summary)}")
    for line in not_judged_lines(report.findings):
        out.print(f"  [cyan]NOT JUDGED YET[/] {escape(line)}")
    for a in report.firing:
        if not any(e.alert_id == a.id for e in (*report.events, *report.delivery.channel_events)):
            out.print(f"  [red]FIRING[/]   {escape(a.summary)} (since {a.opened_day})")
    for a in report.silenced:
        out.print(
            f"  [magenta]SILENCED[/] {escape(a.summary)} (since {a.opened_day}; firing, notifications muted)"
        )
    for channel, _ in report.delivery.sent:
        out.print(f"  sent via {channel}")
    for channel, _, error in report.delivery.failed:
        out.print(f"  [yellow]not delivered via {channel}: {escape(error)} (queued; retried once due)[/]")
    for channel, _, error in report.delivery.gave_up:
        out.print(f"  [red]not delivered via {channel}: {escape(error)} (failed; not retried)[/]")
    for e in report.delivery.channel_events:
        out.print(
            f"  [{'bold red' if e.event == 'firing' else 'green'}]{e.event.upper():<8}[/] {escape(e.summary)}"
        )


@cli.command()
@config_option
@click.option(
    "--as-of", "as_of", callback=_day, metavar="YYYY-MM-DD", help="Judge this UTC day (default: today)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def check(config_path, as_of, as_json) -> None:
    """Judge the day: open and resolve alerts, queue and deliver notifications.

    Exit 0 when nothing fires, 1 when any alert fires (so cron can page on it), 78 on a
    config error. A notification a channel cannot take now stays queued and is retried by a
    later check or run once due (Retry-After, backoff); one refused for good is `failed` and
    raises a `channel` alert on the other channels."""
    from canary.alerts.channels import build_channels

    project = _load(config_path)
    channels = build_channels(project.config.alerts, os.environ, base_dir=project.root)
    if _check_and_print(project, as_of, channels, as_json=as_json):
        sys.exit(EXIT_FIRING)


@cli.command()
@config_option
@click.option("--all", "show_all", is_flag=True, help="Resolved alerts too, with their lifecycle.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def alerts(config_path, show_all, as_json) -> None:
    """List alerts (firing ones unless --all), their lifecycle and the notification outbox."""
    from rich.table import Table

    from canary.results import jsonable
    from canary.store import Store
    from canary.store import alerting as db
    from canary.ui import console
    from canary.ui import shown as escape  # model-derived text: markers for bidi, then escaped

    project = _load(config_path)
    with Store.open(project.store_url, base_dir=project.root) as store:
        rows = db.list_alerts(store, include_resolved=show_all)
        events = db.events_of(store, [r.id for r in rows])
        pending = db.queued(store)
        undeliverable = db.failed(store, limit=10)
    if as_json:
        click.echo(
            json.dumps(
                [{**jsonable(r), "events": jsonable(events[r.id])} for r in rows],
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    table = Table(title=f"{'all' if show_all else 'firing'} alerts", title_justify="left")
    for name in ("state", "model", "scope", "signal", "opened", "resolved", "notified", "summary"):
        table.add_column(name, overflow="fold")
    for r in rows:
        table.add_row(
            r.state,
            escape(r.model_id),
            escape(r.scope),
            r.signal,
            str(r.opened_day),
            str(r.resolved_day or "-"),
            str(r.notify_count),
            escape(r.summary),
        )
    console().print(table)
    if not rows:
        click.echo("no alerts" if show_all else "no alert is firing")
    if pending:
        click.echo(
            f"{len(pending)} notification(s) queued for delivery (a later check retries them once due)"
        )
    for row in undeliverable:
        click.echo(
            f"notification failed via {row.channel} ({row.created_at:%Y-%m-%d %H:%M} UTC): {row.last_error}"
        )


@cli.command()
@config_option
@click.argument("model_id")
@click.option(
    "--canary", "canary_id", metavar="ID", help="Only this canary's alerts (default: all of the model's)."
)
@click.option(
    "--until",
    "until",
    callback=_day,
    required=True,
    metavar="YYYY-MM-DD",
    help="Muted through the end of this UTC day.",
)
@click.option("--reason", default="", help="Why, for the record.")
def silence(config_path, model_id, canary_id, until, reason) -> None:
    """Mute a model's alerts (or one canary's) until a date. Alerts still open and resolve;
    only their notifications are held back (`check` still counts them, marked silenced).
    Exit 64 for a date in the past."""
    from canary.store import Store
    from canary.store import alerting as db
    from canary.store.series import end_of_day

    project = _load(config_path)
    if model_id not in {m.id for m in project.config.models}:
        raise CanaryError(f"unknown model id `{model_id}` (see canary.yaml models:)", exit_code=EXIT_CONFIG)
    if canary_id and canary_id not in {c.id for c in project.canaries}:
        raise CanaryError(f"unknown canary id `{canary_id}` (see prompts/)", exit_code=EXIT_CONFIG)
    now = datetime.now(UTC)
    if until < now.date():
        raise CanaryError(
            f"--until {until} is in the past (today is {now.date()} UTC): give today or a later day",
            exit_code=EXIT_USAGE,
        )
    with Store.open(project.store_url, base_dir=project.root) as store:
        db.add_silence(
            store, model_id=model_id, canary_id=canary_id, until=end_of_day(until), reason=reason, now=now
        )
    what = f"{model_id}/{canary_id}" if canary_id else model_id
    click.echo(f"silenced {what} through {until}" + (f": {reason}" if reason else ""))


# --------------------------------------------------------------------------- schedule


@cli.command()
@config_option
@click.option("--once", is_flag=True, help="Run one job now (run, check, report) and exit with its code.")
@click.option(
    "--print-systemd",
    is_flag=True,
    help="Print canary.service, canary.timer and canary-scheduler.service, then exit.",
)
@click.option("--print-cron", is_flag=True, help="Print a crontab entry (flock-guarded), then exit.")
@click.option("--user", help="User= for --print-systemd.")
def schedule(config_path, once, print_systemd, print_cron, user) -> None:
    """Run the canaries on the `schedule:` in canary.yaml until SIGTERM/SIGINT: each job is
    `canary run` (with its check) then `canary report`; logs one JSON object per line.
    Started after a slot it missed, runs it at once within `misfire_grace_hours`, else logs and
    notifies the gap.
    Exit 0 after a graceful stop; with --once, the job's exit code as `canary run` gives it;
    78 when canary.yaml has no `schedule:`."""
    from canary.schedule import cron_line, serve, systemd_units

    if print_systemd:
        for name, text in systemd_units(config_path, user=user).items():
            click.echo(f"# ---- {name}\n{text}")
        return
    if print_cron:
        click.echo(cron_line(config_path), nl=False)
        return
    sys.exit(serve(config_path, once=once))


# --------------------------------------------------------------------------- status / export


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(config_path, as_json) -> None:
    """Is the canary itself healthy? Last run, runs stuck in `running` (crashed?), the next
    scheduled run, firing alerts, models that cannot be monitored (key variable unset, refused
    by the service), queued notifications, schema revision, database size and sample counts.
    Reads only; works on a store whose schema is behind (and says so)."""
    from canary.status import print_status

    click.echo(print_status(_load(config_path), as_json=as_json))


@cli.command()
@config_option
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(["json", "csv", "openmetrics", "junit"]),
    help="json/csv: one row per day x model x canary; openmetrics: Prometheus gauges (node exporter "
    "textfile collector); junit: one test case per sample, for a CI gate.",
)
@click.option(
    "--out",
    default="-",
    metavar="PATH",
    help="Write to PATH atomically (temp file + rename), or - for stdout.",
)
@click.option(
    "--day",
    "day",
    callback=_day,
    metavar="YYYY-MM-DD",
    help="json/csv: the window's last day; openmetrics/junit: the day (default: newest with data / "
    "the latest run's day).",
)
@click.option("--days", default=30, type=click.IntRange(1, 3660), help="json/csv: days of history.")
@click.option("--model", "model_ids", multiple=True, metavar="ID", help="Only this model (repeatable).")
def export(config_path, fmt, out, day, days, model_ids) -> None:
    """Write stored results for other tools: json, csv, OpenMetrics or JUnit XML."""
    from canary.export import export_to

    export_to(_load(config_path), fmt=fmt, out=out, day=day, days=days, model_ids=model_ids)


# --------------------------------------------------------------------------- report / demo


@cli.command()
@config_option
@click.option(
    "--out", "out", type=click.Path(file_okay=False), help="Output folder (default: the project's reports/)."
)
@click.option("--days", default=90, type=click.IntRange(1, 3660), help="Days of history to show.")
@click.option("--model", "model_ids", multiple=True, metavar="ID", help="Only this model (repeatable).")
@click.option(
    "--as-of", "as_of", callback=_day, metavar="YYYY-MM-DD", help="The report's last day (default: today)."
)
def report(config_path, out, days, model_ids, as_of) -> None:
    """Write the static HTML report: overview, per model x canary trends with their bands,
    alerts, transcripts of failures, and a model-vs-model comparison. Self-contained: open
    index.html from disk or publish the folder as it is."""
    from canary.report import write_report
    from canary.store import Store

    project = _load(config_path)
    known = {m.id for m in project.config.models}
    for model_id in model_ids:
        if model_id not in known:
            raise CanaryError(
                f"unknown model id `{model_id}` (known: {', '.join(sorted(known))})", exit_code=EXIT_CONFIG
            )
    target = Path(out) if out else project.root / project.config.reports
    with Store.open(project.store_url, base_dir=project.root) as store:
        index = write_report(project, store, out=target, days=days, model_ids=model_ids, today=as_of)
    click.echo(f"report written: {index}")


@cli.command()
@click.option("--days", default=45, type=click.IntRange(30, 365), help="Simulated days.")
@click.option(
    "--out", "out", default="reports/demo", type=click.Path(file_okay=False), help="Where the report goes."
)
def demo(days, out) -> None:
    """Run a simulated month end to end with no keys: four simulated models (one silently
    regresses, its successor is steady, one has a two-day 529 incident, one is silently
    re-routed), a run and a check per day printing what would be notified, then the report."""
    from canary.demo import run_demo

    run_demo(days, Path(out), echo=click.echo)


# --------------------------------------------------------------------------- results


@cli.command()
@config_option
@click.option("--last", "which", flag_value="last", default=True, help="The most recent run (default).")
@click.option("--day", "day", callback=_day, metavar="YYYY-MM-DD", help="Every sample recorded for this day.")
@click.option("--model", "model_ids", multiple=True, metavar="ID", help="Only this model (repeatable).")
@click.option("--failures", is_flag=True, help="Only samples that did not pass.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per sample, with transcripts).")
def results(config_path, which, day, model_ids, failures, as_json) -> None:
    """Show stored samples: the last run, or a whole day."""
    from canary.results import print_results

    project = _load(config_path)
    print_results(project, day=day, model_ids=model_ids, failures=failures, as_json=as_json)


# --------------------------------------------------------------------------- sim


@cli.group()
def sim() -> None:
    """The built-in model simulator (Anthropic and OpenAI wire protocols)."""


@sim.command("serve")
@config_option
@click.option("--host", default="127.0.0.1", help="Interface to bind (loopback by default).")
@click.option(
    "--port", default=8787, type=click.IntRange(0, 65535), help="Port to listen on (0: any free port)."
)
def sim_serve(config_path, host, port) -> None:
    """Serve the simulator over HTTP, scripted by the sim models and canaries of a project.

    Anthropic SDK: base_url=http://HOST:PORT ; OpenAI SDK: base_url=http://HOST:PORT/v1 .
    Model names are the `model:` of the project's `provider: sim` entries."""
    from canary.sim import script_from_project, serve_forever

    project = _load(config_path)
    script = script_from_project(project.config.models, [c.canary for c in project.canaries])
    serve_forever(script, host=host, port=port)


# --------------------------------------------------------------------------- db


@cli.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@config_option
def db_upgrade(config_path) -> None:
    """Apply migrations to the configured store (needed on PostgreSQL; SQLite upgrades itself)."""
    from canary.store import Store

    project = _load(config_path)
    store = Store.open(project.store_url, base_dir=project.root, migrate=True)
    migrated, current = store.migrated, store.schema_revision()
    store.close()
    if migrated is None:
        click.echo(f"{store.display_url}: already at revision {current}")
    else:
        click.echo(f"{store.display_url}: upgraded {migrated[0] or 'empty'} -> {migrated[1]}")


@db.command("current")
@config_option
def db_current(config_path) -> None:
    """Print the schema revision of the configured store."""
    from canary.store import Store

    project = _load(config_path)
    from canary.store import HEAD_REVISION

    store = Store.open(project.store_url, base_dir=project.root, check=False)
    try:
        current = store.schema_revision()
        state = "up to date" if current == HEAD_REVISION else f"this canary needs {HEAD_REVISION}"
        click.echo(f"{store.display_url}: revision {current or 'none'} ({state})")
    finally:
        store.close()


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="canary", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("canary: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except CanaryError as exc:
        click.echo(f"canary: error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("canary: interrupted; completed samples are stored, run again to fill the rest", err=True)
        sys.exit(130)
    except OSError as exc:
        click.echo(f"canary: error: {exc.strerror or exc} ({exc.filename or ''})", err=True)
        sys.exit(74)


__all__ = ["EXIT_CONFIG", "cli", "main"]
