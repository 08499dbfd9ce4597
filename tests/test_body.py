"""canary.providers.body: the incremental JSON and event-stream readers behind bounded replies.

Pure functions, so tested directly: every body is fed in chunks cut at every possible place
(escapes, surrogate pairs and numbers split across chunks) and must give what json.loads gives."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from canary.providers.body import (
    MAX_STRUCTURE_CHARS,
    Budget,
    CappedJson,
    CutText,
    Excerpt,
    TextSink,
    full_length,
    read_sse,
)
from canary.providers.errors import BadBody

DOCS = [
    {"a": 1, "b": [1, 2.5, -3e2, True, False, None], "c": 'x"y\\z\n\u00e9\U0001f600', "d": {}, "e": []},
    [],
    None,
    "str",
    0,
    {"k": "日本語" * 100},
    {"long": 'ab\\"c' * 300, "esc": "\\" * 51 + '"', "pairs": "\U0001f600" * 50},
]


def parse(raw: bytes, step: int, budget: Budget | None = None):
    parser = CappedJson(budget)
    for i in range(0, len(raw), step):
        parser.feed(raw[i : i + step])
    return parser.close()


@pytest.mark.parametrize("ensure_ascii", [True, False])
@pytest.mark.parametrize("index", range(len(DOCS)))
def test_any_chunking_gives_what_json_loads_gives(index: int, ensure_ascii: bool) -> None:
    doc = DOCS[index]
    raw = json.dumps(doc, ensure_ascii=ensure_ascii).encode()
    for step in range(1, 14):
        assert parse(raw, step) == doc
    rng = random.Random(index)
    for _ in range(20):
        parser = CappedJson()
        i = 0
        while i < len(raw):
            n = rng.randint(1, 9)
            parser.feed(raw[i : i + n])
            i += n
        assert parser.close() == doc


def test_a_long_string_keeps_the_budget_and_counts_the_rest() -> None:
    raw = json.dumps({"content": [{"type": "text", "text": "x" * 5000}], "model": "m" * 200}).encode()
    value = parse(raw, 333, Budget(text=1000))
    text = value["content"][0]["text"]
    assert isinstance(text, CutText) and len(text) == 1000 and full_length(text) == 5000
    assert value["model"] == "m" * 200  # short strings are kept whole whatever the budget


@pytest.mark.parametrize(
    "raw,why",
    [
        (b"<!DOCTYPE html><html>", "unexpected '<'"),
        (b"", "empty body"),
        (b'{"a": 1', "cut short"),
        (b'{"a":}', "unexpected"),
        (b"[1,]", "unexpected"),
        (b'{"a":1} trailing', "data after"),
        (b'\xff\xfe{"a": 1}', "unexpected"),  # bytes that are not UTF-8 outside a string
        (b'"unterminated', "cut short"),
        (b"[1 2]", "expected ','"),
        (b'{"a" 1}', "expected ':'"),
        (b"[" * 100, "nested too deep"),
        (b'"bad \\x escape"', "invalid JSON string"),
    ],
)
def test_what_is_not_json_is_a_bad_body(raw: bytes, why: str) -> None:
    with pytest.raises(BadBody, match=why):
        parse(raw, 3)


@pytest.mark.parametrize("size", [1, 2, 3, 64])
def test_bytes_not_utf8_inside_a_string_are_kept_as_surrogates(size: int) -> None:
    """An answer with one odd byte is still an answer: the byte survives as a lone surrogate
    (surrogateescape), whichever chunk boundary splits it, for canary.textsafe to replace and flag."""
    value = parse('{"text": "caf\u00e9 '.encode() + b'\xff\xfe "}', size)
    assert value == {"text": "caf\u00e9 \udcff\udcfe "}


def test_structure_beyond_its_budget_is_a_bad_body() -> None:
    raw = b"[" + b",".join([b"1"] * (MAX_STRUCTURE_CHARS // 8)) + b"]"  # small values cost their objects
    with pytest.raises(BadBody, match="structure too large"):
        parse(raw, 65536)


def test_text_sink_shares_one_budget() -> None:
    budget = Budget(text=10)
    first, second = TextSink(budget), TextSink(budget)
    first.add("abcdefgh")
    second.add("ijklmnop")
    assert first.value() == "abcdefgh" and not first.cut
    value = second.value()
    assert value == "ij" and isinstance(value, CutText) and value.full_length == 8 and second.cut


def test_excerpt_is_capped_and_redacted() -> None:
    excerpt = Excerpt()
    excerpt.add(b"<html>Authorization: Bearer abc.def.ghi sk-live-12345678 " + b"y" * 5000)
    text = excerpt.text(("abc.def.ghi",))
    assert len(text) <= 512 and "abc.def" not in text and "sk-live" not in text and "[redacted]" in text


def sse(raw: bytes, step: int, content_type: str | None = "text/event-stream"):
    async def chunks():
        for i in range(0, len(raw), step):
            yield raw[i : i + step]

    async def collect():
        return [(e.event, e.data, e.done) async for e in read_sse(chunks(), Excerpt(), content_type)]

    return asyncio.run(collect())


def test_event_stream_in_any_chunking() -> None:
    raw = (
        b'event: message_start\ndata: {"type":"message_start","x":"a b"}\n\n: a comment\n\n'
        b'event: ping\r\ndata: {"type":"ping"}\r\n\r\ndata: {"a":\ndata: 1}\n\ndata: [DONE]\n\n'
        b'data: {"never": "closed"}\n'
    )
    expected = [
        ("message_start", {"type": "message_start", "x": "a b"}, False),
        ("ping", {"type": "ping"}, False),
        (None, {"a": 1}, False),
        (None, None, True),
    ]
    for step in range(1, 30):
        assert sse(raw, step) == expected


def test_an_html_page_is_not_an_event_stream() -> None:
    with pytest.raises(BadBody, match="expected an event stream, got text/html"):
        sse(b"<html>502</html>", 4, "text/html; charset=utf-8")
