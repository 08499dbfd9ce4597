"""canary.textsafe: what the store can hold and what a reader sees, for any str."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from canary.records import Attempt, ChatResponse, SampleResult, ScoreRecord, ToolCall, TurnRecord
from canary.textsafe import (
    decode,
    is_storable,
    json_visible,
    sanitize_response,
    sanitize_sample,
    storable,
    visible,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("plain ünïcødé ✓ 日本語 \U0001f600", "plain ünïcødé ✓ 日本語 \U0001f600"),
        ("a\x00b", "a\ufffdb"),
        ("lone \ud800 high", "lone \ufffd high"),
        ("lone \udc00 low", "lone \ufffd low"),
        ("\ud83d\ude00", "\U0001f600"),  # a pair split over two deltas, joined again
        ("\ude00\ud83d", "\ufffd\ufffd"),  # the wrong order is two lone halves
        ("rtl \u202e kept", "rtl \u202e kept"),  # storable: only shown differently
    ],
)
def test_storable_replaces_only_what_no_database_can_hold(text: str, stored: str) -> None:
    assert storable(text) == stored
    assert is_storable(stored)
    stored.encode("utf-8")  # never raises


def test_storable_returns_clean_text_unchanged_without_copying() -> None:
    text = "x" * 1000
    assert storable(text) is text


def test_decode_keeps_invalid_bytes_as_surrogates_that_the_store_then_replaces() -> None:
    text = decode(b"ok \xff\xfe end")
    assert text == "ok \udcff\udcfe end"
    assert storable(text) == "ok \ufffd\ufffd end"


def test_visible_marks_bidi_and_controls_but_keeps_newlines_and_tabs() -> None:
    assert visible("a\u202eb\u2066c\u2069\x00d\x1b[31m\x7f\u200f") == (
        "a⟨U+202E⟩b⟨U+2066⟩c⟨U+2069⟩⟨U+0000⟩d⟨U+001B⟩[31m⟨U+007F⟩⟨U+200F⟩"
    )
    assert visible("line1\nline2\tcol\r\n") == "line1\nline2\tcol\r\n"
    assert visible("ok\rFORGED") == "ok⟨U+000D⟩FORGED"  # a bare CR would overwrite the line
    assert visible("half \ud800") == "half \ufffd"
    assert visible("日本語 ✓") == "日本語 ✓"


def test_json_visible_is_the_same_json_value_without_raw_controls() -> None:
    value = {"reply": "a\u202eb\x00c\ud800\u2028", "n": [1, "\x1b"]}
    text = json_visible(json.dumps(value, ensure_ascii=False, indent=2))
    assert json.loads(text) == value
    assert all(ch not in text for ch in "\u202e\x00\ud800\u2028\x1b")
    text.encode("utf-8")


def _sample(turns: list[TurnRecord], outcome: str = "pass", **kw: object) -> SampleResult:
    return SampleResult(date(2026, 1, 1), "m", "c", "h", 0, outcome, T0, T0, turns=turns, **kw)  # type: ignore[arg-type]


def test_sanitize_sample_flags_the_sample_and_only_the_altered_turns() -> None:
    good = TurnRecord(1, "q", "fine", scores=[ScoreRecord("s", True, 1.0, "ok")])
    bad = TurnRecord(2, "q2", "", tool_calls=[ToolCall("id", "f", {"k": ["\x00"]}, '{"k": ["\\u0000"]}')])
    sample = _sample([good, bad])
    clean = sanitize_sample(sample)
    assert clean.sanitized and not clean.turns[0].sanitized and clean.turns[1].sanitized
    assert clean.turns[1].tool_calls[0].arguments == {"k": ["\ufffd"]}
    assert clean.turns[1].tool_calls[0].raw_arguments == '{"k": ["\\u0000"]}'  # JSON text: storable as is
    assert not sample.sanitized and sample.turns[1].tool_calls[0].arguments == {
        "k": ["\x00"]
    }  # input untouched


def test_sanitize_sample_covers_sample_level_fields_and_attempts() -> None:
    sample = _sample([], served_model="m\ud800", attempts=[Attempt(1, T0, 0.1, 200, "bad_response", "x\x00")])
    clean = sanitize_sample(sample)
    assert clean.sanitized and clean.served_model == "m\ufffd" and clean.attempts[0].message == "x\ufffd"
    assert not sanitize_sample(_sample([TurnRecord(1, "q", "ok")])).sanitized


def test_sanitize_response_before_a_reply_is_scored_or_sent_back() -> None:
    response = ChatResponse(
        "half \ud800",
        (ToolCall("i", "f", {"a": "\ud800"}, '{"a": "\\ud800"}'),),
        1,
        1,
        "model\x00",
        None,
        None,
        0.1,
        reasoning=({"type": "thinking", "thinking": "\ud800"},),
    )
    clean, altered = sanitize_response(response)
    assert altered and clean.text == "half \ufffd" and clean.served_model == "model\ufffd"
    assert clean.tool_calls[0].arguments == {"a": "\ufffd"} and clean.reasoning[0]["thinking"] == "\ufffd"
    json.dumps([clean.text, clean.tool_calls[0].arguments, clean.reasoning], ensure_ascii=False).encode()
    same, altered = sanitize_response(ChatResponse("ok", (), 1, 1, "m", None, None, 0.1))
    assert not altered and same.text == "ok"


def test_progress_lines_show_a_hostile_reason_as_one_line_with_markers() -> None:
    import io

    from canary.progress import LineProgress

    out = io.StringIO()
    progress = LineProgress(1, out)
    progress.advance(
        _sample([], outcome="fail", reason="no Paris in \u202eLyon\n[2/1] m c#0 pass forged \ud800")
    )
    line = out.getvalue()
    assert line.count("\n") == 1 and "⟨U+202E⟩Lyon [2/1] m c#0 pass forged \ufffd" in line
