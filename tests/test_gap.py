"""Issue 8 part 11: a gap in monitoring is said once, through the channels, by the run that
follows it (the cron line, the systemd timer and the daemon all go through `canary run` + check)."""

from __future__ import annotations

import textwrap
from datetime import UTC, date, datetime, timedelta

from canary.gap import Gap, closed_gap
from canary.store import Store
from canary.store import alerting as db
from canary.store.gaps import Completed
from tests.cli_helpers import run_cli
from tests.projects import SIM_CONFIG, write_project
from tests.test_check import make_due


def _project(tmp_path, receiver, extra: str = "", store: str = "sqlite:///canary.db"):
    config = (
        SIM_CONFIG.replace("sqlite:///canary.db", store)
        + textwrap.dedent(f"""\
        alerts:
          log: false
          webhook: {{url: "{receiver.url("/hook")}"}}
        """)
        + extra
    )
    return write_project(tmp_path, config)


def _gap_hooks(receiver) -> list[dict]:
    return [
        r.json()
        for r in receiver.received()
        if r.path == "/hook" and any(e["signal"] == "gap" for e in r.json()["events"])
    ]


def test_a_run_after_a_gap_says_it_once(tmp_path, capsys, http_receiver, store_url) -> None:
    if store_url.startswith("postgresql"):
        Store.open(store_url, migrate=True).close()  # a shared database is upgraded deliberately
    path = _project(tmp_path, http_receiver, store=store_url)
    assert run_cli(capsys, "run", "-q", "--config", str(path), "--as-of", "2026-03-01").code == 0
    assert _gap_hooks(http_receiver) == []

    first = run_cli(capsys, "run", "-q", "--config", str(path), "--as-of", "2026-03-04")
    assert first.code == 0, first.err  # a gap is news, not a firing alert: the exit code is the run's
    assert "monitoring gap: no completed run since 2026-03-01: 2 days missed" in first.err
    hooks = _gap_hooks(http_receiver)
    assert len(hooks) == 1
    (event,) = hooks[0]["events"]
    assert event["event"] == "gap" and event["model_id"] == "*"
    assert event["summary"] == "no completed run since 2026-03-01: 2 days missed"
    assert event["today"] == "72 h without a completed run" and event["baseline"].startswith("limit 26 h")
    assert "2026-03-01" in hooks[0]["title"] and event["day"] == "2026-03-04"

    # The same day again (nothing to run), a forced re-run, a standalone check: never repeated.
    assert run_cli(capsys, "run", "-q", "--config", str(path), "--as-of", "2026-03-04").code == 0
    assert run_cli(capsys, "run", "-q", "--force", "--config", str(path), "--as-of", "2026-03-04").code == 0
    again = run_cli(capsys, "check", "--config", str(path), "--as-of", "2026-03-04")
    assert again.code == 0 and "monitoring gap" not in again.err
    assert len(_gap_hooks(http_receiver)) == 1
    # a past day re-checked does not dig it up either
    assert run_cli(capsys, "check", "--config", str(path), "--as-of", "2026-03-01").code == 0
    assert len(_gap_hooks(http_receiver)) == 1

    with Store.open(store_url, base_dir=tmp_path) as store:
        gaps = [a for a in db.list_alerts(store, include_resolved=True) if a.signal == "gap"]
        outbox = db.outbox(store)
        firing = db.list_alerts(store)
    assert len(gaps) == 1 and gaps[0].state == "resolved" and gaps[0].notify_count == 1
    assert gaps[0].summary == "no completed run since 2026-03-01: 2 days missed"
    assert firing == []  # a one-shot notice leaves nothing firing
    assert [(o.channel, o.status) for o in outbox] == [("webhook", "sent")]
    listed = run_cli(capsys, "alerts", "--all", "--config", str(path))
    assert "no completed run since 2026-03-01" in listed.out

    # The next gap is a new one, said once again.
    assert run_cli(capsys, "run", "-q", "--config", str(path), "--as-of", "2026-03-05").code == 0
    assert len(_gap_hooks(http_receiver)) == 1  # consecutive days: no gap
    assert run_cli(capsys, "run", "-q", "--config", str(path), "--as-of", "2026-03-10").code == 0
    hooks = _gap_hooks(http_receiver)
    assert (
        len(hooks) == 2
        and hooks[1]["events"][0]["summary"] == "no completed run since 2026-03-05: 4 days missed"
    )


def test_a_gap_the_dead_mans_switch_already_paged_ends_in_one_message(
    tmp_path, capsys, http_receiver
) -> None:
    """The dead man's switch fired during the gap (a check ran while nothing did): the run that
    ends the gap sends the gap notice, and the switch resolving is recorded, not sent again."""
    path = _project(tmp_path, http_receiver)
    assert run_cli(capsys, "run", "-q", "--config", str(path), "--as-of", "2026-03-01").code == 0
    assert run_cli(capsys, "check", "--config", str(path), "--as-of", "2026-03-03").code == 1  # stale fires
    paged = [r.json() for r in http_receiver.received()]
    assert [[(e["signal"], e["event"]) for e in h["events"]] for h in paged] == [[("stale", "firing")]]
    assert run_cli(capsys, "run", "-q", "--config", str(path), "--as-of", "2026-03-04").code == 0
    after = [r.json() for r in http_receiver.received()][1:]
    assert [[(e["signal"], e["event"]) for e in h["events"]] for h in after] == [[("gap", "gap")]]
    with Store.open(f"sqlite:///{tmp_path / 'canary.db'}") as store:
        [stale] = [a for a in db.list_alerts(store, include_resolved=True) if a.signal == "stale"]
    assert stale.state == "resolved"


def test_a_queued_gap_survives_a_dead_channel(tmp_path, capsys, http_receiver) -> None:
    """The webhook answers 500 to the run that finds the gap: the notice stays queued, the next
    check delivers it, and it is still said only once."""
    path = _project(tmp_path, http_receiver, "signals: {max_age_hours: 30}\n")
    assert run_cli(capsys, "run", "-q", "--config", str(path), "--as-of", "2026-03-01").code == 0
    http_receiver.script(500, 500, 500)
    assert run_cli(capsys, "run", "-q", "--config", str(path), "--as-of", "2026-03-03").code == 0
    assert len(http_receiver.received()) == 3 and _gap_hooks(http_receiver) == [
        r.json() for r in http_receiver.received()
    ]
    assert run_cli(capsys, "check", "--config", str(path), "--as-of", "2026-03-03").code == 0
    assert len(http_receiver.received()) == 3  # backing off after the 500s: not due yet
    make_due(tmp_path)
    assert run_cli(capsys, "check", "--config", str(path), "--as-of", "2026-03-03").code == 0
    hooks = _gap_hooks(http_receiver)
    assert len(hooks) == 4 and len({h["id"] for h in hooks}) == 1  # the same message, delivered once now
    assert run_cli(capsys, "check", "--config", str(path), "--as-of", "2026-03-03").code == 0
    assert len(http_receiver.received()) == 4


def _c(day: date, hour: int = 6) -> Completed:
    return Completed(day, datetime(day.year, day.month, day.day, hour, tzinfo=UTC))


def test_closed_gap_rules() -> None:
    d = date(2026, 3, 1)
    runs = [_c(d), _c(d + timedelta(days=1)), _c(d + timedelta(days=2), 7)]  # 24 h, then 25 h
    now = runs[-1].at + timedelta(minutes=5)
    assert closed_gap(runs, day=now.date(), now=now, max_age_hours=26) is None
    runs = [_c(d), _c(d + timedelta(days=1), 9)]  # 27 h: a gap of no whole day
    now = runs[-1].at
    gap = closed_gap(runs, day=now.date(), now=now, max_age_hours=26)
    assert (
        gap is not None
        and gap.days_missed == 0
        and gap.summary == "no completed run for 27 h since 2026-03-01 06:00 UTC"
    )
    assert closed_gap(runs, day=d, now=now, max_age_hours=26) is None  # a past day: never
    assert (
        closed_gap(runs, day=now.date(), now=now + timedelta(hours=27), max_age_hours=26) is None
    )  # old news
    assert closed_gap(runs[:1], day=now.date(), now=now, max_age_hours=26) is None  # the first run ever
    open_gap = Gap(since=runs[0], until=None, now=datetime(2026, 3, 4, 13, tzinfo=UTC), limit_hours=26)
    assert open_gap.days_missed == 3 and open_gap.alert_id == gap.alert_id  # same gap, same notice
