"""Alert lifecycle and outbox against a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from canary.alerts.findings import Finding
from canary.alerts.lifecycle import Watched, apply, still_firing
from canary.alerts.message import message_from_json, message_to_json
from canary.alerts.outbox import deliver_pending, group
from canary.store import Store
from canary.store import alerting as db

DAY = date(2026, 6, 1)
NOON = datetime(2026, 6, 1, 12, tzinfo=UTC)
WATCHED = Watched({"m"}, {"c1"})


def firing(scope: str = "*", signal: str = "quality", summary: str = "m pass rate 60% vs 95%") -> Finding:
    return Finding(
        "m", scope, signal, "firing", summary, today="60% (18/30)", baseline="95% baseline", detail="d"
    )


def ok(scope: str = "*", signal: str = "quality") -> Finding:
    return Finding("m", scope, signal, "ok", "m pass rate 96%")


def step(store: Store, findings, *, day=DAY, now=NOON, repeat_hours=24.0):
    with store.writing() as conn:
        events = apply(conn, findings, day=day, now=now, repeat_hours=repeat_hours, watched=WATCHED)
        live = still_firing(conn, now)
    return events, live


@pytest.fixture
def store(store_url):
    with Store.open(store_url, migrate=True) as s:
        yield s


def test_firing_then_quiet_then_repeat_then_resolved(store):
    events, live = step(store, [firing()])
    assert [e.event for e in events] == ["firing"] and len(live) == 1
    events, _ = step(store, [firing()], now=NOON + timedelta(hours=1))
    assert events == []  # still firing, not yet due for a repeat
    events, _ = step(store, [firing()], day=DAY + timedelta(days=1), now=NOON + timedelta(hours=24))
    assert [e.event for e in events] == ["repeat"]
    events, live = step(store, [ok()], day=DAY + timedelta(days=2), now=NOON + timedelta(hours=48))
    assert [e.event for e in events] == ["resolved"] and live == []
    [alert] = db.list_alerts(store, include_resolved=True)
    assert (
        alert.state == "resolved"
        and alert.notify_count == 2
        and alert.resolved_day == DAY + timedelta(days=2)
    )
    lifecycle = [e["event"] for e in db.events_of(store, [alert.id])[alert.id]]
    assert lifecycle == ["opened", "notified", "repeated", "resolved"]


def test_held_findings_change_nothing(store):
    step(store, [firing()])
    events, live = step(
        store, [Finding("m", "*", "quality", "held", "held: outage")], now=NOON + timedelta(hours=30)
    )
    assert events == [] and len(live) == 1


def test_silence_mutes_notifications_but_not_state(store):
    db.add_silence(
        store,
        model_id="m",
        canary_id=None,
        until=NOON + timedelta(days=2),
        reason="vendor incident",
        now=NOON,
    )
    events, live = step(store, [firing()])
    assert events == [] and live == []  # muted: not paging
    [alert] = db.list_alerts(store)
    assert alert.state == "firing"
    # After the silence ends, the still-firing alert is announced once.
    events, live = step(store, [firing()], day=DAY + timedelta(days=3), now=NOON + timedelta(days=3))
    assert [e.event for e in events] == ["firing"] and len(live) == 1


def test_silence_of_one_canary_leaves_the_others(store):
    db.add_silence(store, model_id="m", canary_id="c1", until=NOON + timedelta(days=1), reason="", now=NOON)
    events, _ = step(store, [firing("c1"), firing("*")])
    assert [(e.scope, e.event) for e in events] == [("all canaries", "firing")]


def test_an_older_day_never_moves_an_alert_backwards(store):
    step(store, [firing()], day=DAY + timedelta(days=5))
    events, live = step(store, [ok()], day=DAY)
    assert events == [] and len(live) == 1


def test_alerts_for_models_no_longer_watched_are_closed(store):
    with store.writing() as conn:
        apply(
            conn,
            [Finding("gone", "*", "quality", "firing", "x")],
            day=DAY,
            now=NOON,
            repeat_hours=24,
            watched=Watched({"gone"}, set()),
        )
    events, live = step(store, [])
    assert live == [] and db.list_alerts(store, include_resolved=True)[0].state == "resolved"


def test_grouping_makes_one_message_and_it_round_trips(store):
    events, _ = step(
        store,
        [
            firing("*"),
            firing("c1", summary="m pass rate on c1: 50%"),
            firing("*", "availability", "m availability 40% unavailable"),
        ],
    )
    message = group(events, now=NOON, report_url="https://r.example/")
    assert len(message.events) == 3 and message.title.startswith("canary: 3 alerts firing")
    assert message_from_json(message_to_json(message)) == message


def test_two_concurrent_checks_queue_one_notification(store_url):
    barrier = threading.Barrier(2)
    results: list[int] = []

    def check() -> None:
        with Store.open(store_url, migrate=True) as s:
            barrier.wait()
            with s.writing() as conn:
                events = apply(conn, [firing()], day=DAY, now=NOON, repeat_hours=24, watched=WATCHED)
                if events:
                    message = group(events, now=NOON, report_url=None)
                    db.enqueue(conn, message.id, ["log"], message_to_json(message), NOON)
            results.append(len(events))

    with Store.open(store_url, migrate=True):
        pass
    threads = [threading.Thread(target=check) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1]
    with Store.open(store_url) as s:
        assert len(db.queued(s)) == 1 and len(db.list_alerts(s)) == 1


class Flaky:
    """A real channel's failure mode, scripted: the first `fail` deliveries raise."""

    name = "log"

    def __init__(self, fail: int) -> None:
        from canary.alerts.message import DeliveryError

        self.fail, self.calls, self.error = fail, 0, DeliveryError

    def deliver(self, message) -> None:
        self.calls += 1
        if self.calls <= self.fail:
            raise self.error("server said no")


def test_failed_delivery_stays_queued_and_is_sent_once_later(store):
    events, _ = step(store, [firing()])
    message = group(events, now=NOON, report_url=None)
    with store.writing() as conn:
        db.enqueue(conn, message.id, ["log"], message_to_json(message), NOON)
    down = Flaky(fail=10)
    report = deliver_pending(store, [down], attempts=2, sleep=lambda s: None, clock=lambda: NOON)
    assert report.failed and not report.sent and down.calls == 2
    [row] = db.queued(store)
    assert row.attempts == 2 and row.last_error == "server said no"
    assert row.next_attempt_at == NOON + timedelta(minutes=2)  # backoff: 1 min doubled per try so far
    up = Flaky(fail=0)
    early = deliver_pending(
        store, [up], attempts=2, sleep=lambda s: None, clock=lambda: NOON + timedelta(minutes=1)
    )
    assert early.sent == [] and early.deferred == 1 and up.calls == 0  # not due yet: not tried
    later = NOON + timedelta(minutes=2)
    assert deliver_pending(store, [up], attempts=2, sleep=lambda s: None, clock=lambda: later).sent == [
        ("log", message.id)
    ]
    assert deliver_pending(store, [up], attempts=2, sleep=lambda s: None, clock=lambda: later).sent == []
    assert up.calls == 1 and db.queued(store) == []


def test_concurrent_deliveries_send_each_notification_once(store_url):
    with Store.open(store_url, migrate=True) as s:
        events, _ = step(s, [firing()])
        message = group(events, now=NOON, report_url=None)
        with s.writing() as conn:
            db.enqueue(conn, message.id, ["log"], message_to_json(message), NOON)
    channel = Flaky(fail=0)
    barrier = threading.Barrier(3)

    def deliver() -> None:
        with Store.open(store_url) as s:
            barrier.wait()
            deliver_pending(s, [channel], attempts=1)

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert channel.calls == 1


class Refusing(Flaky):
    """A channel whose receiver refuses for good (a Slack `channel_not_found`)."""

    name = "slack"

    def deliver(self, message) -> None:
        from canary.alerts.message import DeliveryError

        self.calls += 1
        raise DeliveryError(
            "slack webhook answered HTTP 200 with channel_not_found",
            permanent=True,
            reason="channel_not_found",
        )


def test_permanent_refusal_fails_once_and_opens_one_channel_alert_on_the_others(store):
    events, _ = step(store, [firing()])
    message = group(events, now=NOON, report_url=None)
    with store.writing() as conn:
        db.enqueue(conn, message.id, ["slack", "log"], message_to_json(message), NOON)
    slack, log = Refusing(fail=0), Flaky(fail=0)
    report = deliver_pending(store, [slack, log], attempts=3, sleep=lambda s: None, clock=lambda: NOON)
    assert slack.calls == 1 and log.calls == 2  # the alert, then the channel alert; slack not retried
    assert [(c, e) for c, _, e in report.gave_up] == [
        ("slack", "slack webhook answered HTTP 200 with channel_not_found")
    ]
    assert [(e.event, e.scope, e.summary) for e in report.channel_events] == [
        ("firing", "slack", "Slack delivery is failing: channel_not_found")
    ]
    assert {(r.channel, r.status) for r in db.outbox(store)} == {("slack", "failed"), ("log", "sent")}
    with store.reading() as conn:
        live = {(a.model_id, a.scope, a.signal) for a in still_firing(conn, NOON)}
    assert live == {("m", "*", "quality"), ("*", "slack", "channel")}
    again = deliver_pending(store, [slack, log], attempts=3, sleep=lambda s: None, clock=lambda: NOON)
    assert again.sent == again.gave_up == again.channel_events == [] and slack.calls == 1 and log.calls == 2


def test_unreadable_payload_fails_without_blaming_the_channel(store):
    with store.writing() as conn:
        db.enqueue(conn, "broken", ["log"], "{not json", NOON)
    log = Flaky(fail=0)
    report = deliver_pending(store, [log], attempts=3, sleep=lambda s: None, clock=lambda: NOON)
    assert log.calls == 0 and [c for c, _, _ in report.gave_up] == ["log"] and report.channel_events == []
    [row] = db.failed(store)
    assert row.last_error.startswith("unreadable notification payload")


class Rude(Flaky):
    """A receiver whose refusal text carries terminal escapes and line breaks."""

    def deliver(self, message) -> None:
        from canary.alerts.message import DeliveryError

        self.calls += 1
        raise DeliveryError(
            "email: server answered 554 \x1b[2Jgo away\r\nFAKE",
            permanent=True,
            reason="554 \x1b[31mgo away\nFAKE",
        )


def test_receiver_text_is_stored_flattened(store):
    events, _ = step(store, [firing()])
    message = group(events, now=NOON, report_url=None)
    with store.writing() as conn:
        db.enqueue(conn, message.id, ["log"], message_to_json(message), NOON)
    report = deliver_pending(store, [Rude(fail=0)], attempts=1, sleep=lambda s: None, clock=lambda: NOON)
    [row] = db.failed(store)
    assert "\x1b" not in row.last_error and "\n" not in row.last_error and "\r" not in row.last_error
    [opened] = report.channel_events  # opened, with no working channel left to tell: still shown by check
    assert opened.summary == "Log delivery is failing: 554  [31mgo away FAKE"
    assert [r.message_id for r in db.outbox(store)] == [message.id]  # nothing queued for nobody
    with store.reading() as conn:
        assert any(a.signal == "channel" for a in still_firing(conn, NOON))


def test_channel_alert_of_a_channel_no_longer_configured_closes_quietly(store):
    events, _ = step(store, [firing()])
    message = group(events, now=NOON, report_url=None)
    with store.writing() as conn:
        db.enqueue(conn, message.id, ["slack", "log"], message_to_json(message), NOON)
    log = Flaky(fail=0)
    deliver_pending(store, [Refusing(fail=0), log], attempts=1, sleep=lambda s: None, clock=lambda: NOON)
    assert [a.scope for a in db.list_alerts(store) if a.signal == "channel"] == ["slack"]
    calls = log.calls
    report = deliver_pending(
        store, [log], attempts=1, sleep=lambda s: None, clock=lambda: NOON
    )  # slack removed
    assert report.channel_events == [] and log.calls == calls  # closed without a notification
    [closed] = [a for a in db.list_alerts(store, include_resolved=True) if a.signal == "channel"]
    assert closed.state == "resolved"
    assert (
        db.events_of(store, [closed.id])[closed.id][-1]["detail"]
        == "channel no longer configured in canary.yaml"
    )
