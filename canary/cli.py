"""The `canary` command. Heavy modules are imported inside commands to keep start-up fast."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import click

from canary import __version__
from canary.errors import EXIT_CONFIG, EXIT_SOFTWARE, EXIT_UNAVAILABLE, CanaryError

CONTEXT = {"auto_envvar_prefix": "CANARY", "help_option_names": ["-h", "--help"], "show_default": True}

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), envvar="CANARY_CONFIG", show_envvar=True,
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
    API key variable."""
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
@click.option("--samples", type=click.IntRange(1, 1000), help="Samples per canary per model (overrides the files).")
@click.option("--as-of", "as_of", callback=_day, metavar="YYYY-MM-DD", help="Record the run under this UTC day.")
@click.option("--force", is_flag=True, help="Re-run slots already recorded for the day and replace them.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def run(config_path, model_ids, canary_ids, tags, samples, as_of, force, quiet, as_json) -> None:
    """Replay every canary against every model and store each sample.

    Only slots missing for the day are run (a second run the same day fills gaps);
    --force re-runs them. Exit 0 when every model answered (pass or fail), 69 when a model
    rejected the requests (bad key, unknown model name, quota), 70 when a scorer crashed."""
    from canary.pipeline import RunOptions
    from canary.pipeline import run as run_pipeline
    from canary.summary import render_table, summarize

    project = _load(config_path)
    options = RunOptions(tuple(model_ids), tuple(canary_ids), tuple(tags), samples, as_of, force, quiet)
    report = run_pipeline(project, options)
    summaries = summarize(report.stats.samples)
    if as_json:
        click.echo(json.dumps({
            "run_id": report.run_id, "day": report.day.isoformat(), "planned": report.planned,
            "models": [s.as_dict() for s in summaries],
            "trouble": {k: {"message": v.message, "skipped": v.skipped} for k, v in report.trouble.items()},
        }, indent=2))
    elif report.planned == 0:
        click.echo(f"nothing to run: all {report.already} slots for {report.day} are recorded (--force re-runs them)")
    else:
        from canary.ui import console

        console().print(render_table(summaries, f"run {report.run_id} · {report.day} · {report.planned} samples"))
    for model_id, trouble in sorted(report.trouble.items()):
        skipped = f" ({trouble.skipped} samples skipped)" if trouble.skipped else ""
        click.echo(f"canary: model {model_id}: {trouble.message}{skipped}", err=True)
    if report.trouble:
        sys.exit(EXIT_UNAVAILABLE)
    if any(s.outcome == "harness_error" for s in report.stats.samples):
        click.echo("canary: a scorer crashed; see `canary results --last` (outcome harness_error)", err=True)
        sys.exit(EXIT_SOFTWARE)


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
@click.option("--port", default=8787, type=click.IntRange(0, 65535), help="Port to listen on (0: any free port).")
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
