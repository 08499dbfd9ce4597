"""Text a model sent, made storable and safe to show.

Two jobs, kept apart on purpose:

- `storable` / `sanitize_sample`: what the store can hold. A lone surrogate (JSON `"\\ud800"`)
  cannot be encoded to UTF-8 and PostgreSQL text cannot hold NUL, so both become U+FFFD
  before a sample is written, and the sample (and the turn) is flagged `sanitized`. Nothing
  else changes: the stored text is what the model sent wherever it could be kept.
- `visible`: what a reader sees. Bidi controls (which can make a reply read backwards or
  disguise a served-model name), NUL and other control characters are shown as markers such
  as `⟨U+202E⟩` in the report and in terminal output, after which the usual escaping still
  applies. Newlines and tabs stay.

Both are total: they accept any `str` and never raise."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from canary.records import Attempt, ChatResponse, SampleResult, ScoreRecord, ToolCall, TurnRecord

REPLACEMENT = "\ufffd"

# Bidi embeddings/overrides/isolates and marks, C0 controls but tab and newline, DEL, C1
# controls, line/paragraph separators and lone surrogates; CR only when it does not end a
# CRLF line (a bare CR sends a terminal back to the start of the line, to overwrite it).
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
    "|\r(?!\n)"
)


def storable(text: str) -> str:
    """`text` with every NUL and lone surrogate replaced by U+FFFD; the same object when clean.

    A surrogate pair split across two strings and joined again (two stream deltas) is
    rejoined into its character rather than replaced."""
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    if _has_surrogate(text):
        # UTF-16 round trip: valid pairs become their character, lone halves U+FFFD.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def decode(data: bytes) -> str:
    """Bytes from the wire as text, for code that decodes a body itself (an excerpt of a body
    the SDK could not parse): invalid UTF-8 becomes lone surrogates (`surrogateescape`), which
    `sanitize_sample` then stores as U+FFFD with the `sanitized` flag, like any other odd text."""
    return data.decode("utf-8", "surrogateescape")


def _has_surrogate(text: str) -> bool:
    """Whether UTF-8 cannot encode `text`. isascii() is O(1) in CPython; encoding is a C loop
    that, on a 20 MB reply, costs about a third of a regex search."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def is_storable(text: str) -> bool:
    return "\x00" not in text and not _has_surrogate(text)


def _marker(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xD800 <= code <= 0xDFFF:
        return REPLACEMENT
    return f"⟨U+{code:04X}⟩"


def visible(text: str) -> str:
    """`text` with bidi controls, NUL and other control characters shown as `⟨U+202E⟩`-style
    markers (lone surrogates as U+FFFD), so they can neither reorder nor hide what is around
    them. Tabs, newlines and CRLF stay. Escape for the medium (HTML, rich markup) afterwards."""
    return _INVISIBLE.sub(_marker, text)


def json_visible(encoded: str) -> str:
    """JSON text (from `json.dumps(..., ensure_ascii=False)`) with the characters `visible`
    marks written as `\\uXXXX` escapes instead: the same JSON value, but a terminal or a log
    viewer shows no bidi override or control character raw, and a lone surrogate cannot make
    the output unencodable. Outside strings json.dumps writes only ASCII, so this is safe."""
    return _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", encoded)


class _Cleaner:
    """Replaces unstorable text in nested values and remembers whether it changed anything."""

    def __init__(self) -> None:
        self.changed = False

    def text(self, value: str) -> str:
        cleaned = storable(value)
        # A rejoined surrogate pair is the character the model sent: stored, not flagged.
        if cleaned is not value and cleaned.count(REPLACEMENT) > value.count(REPLACEMENT):
            self.changed = True
        return cleaned

    def optional(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)

    def value(self, value: Any) -> Any:
        """Strings anywhere inside JSON-like data (tool arguments), keys included."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k) if isinstance(k, str) else k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value


def _call(c: _Cleaner, call: ToolCall) -> ToolCall:
    return ToolCall(
        id=c.text(call.id),
        name=c.text(call.name),
        arguments=None if call.arguments is None else c.value(call.arguments),
        raw_arguments=c.text(call.raw_arguments),
    )


def _turn(turn: TurnRecord) -> TurnRecord:
    c = _Cleaner()
    clean = dataclasses.replace(
        turn,
        sent=c.text(turn.sent),
        reply=c.text(turn.reply),
        tool_calls=[_call(c, call) for call in turn.tool_calls],
        served_model=c.optional(turn.served_model),
        stop_reason=c.optional(turn.stop_reason),
        fingerprint=c.optional(turn.fingerprint),
        scores=[ScoreRecord(c.text(s.scorer), s.passed, s.score, c.text(s.reason)) for s in turn.scores],
        refusal=c.optional(turn.refusal),
        failure=c.optional(turn.failure),
    )
    if not c.changed:
        return clean
    clean.sanitized = True
    return clean


def _attempt(c: _Cleaner, attempt: Attempt) -> Attempt:
    return dataclasses.replace(
        attempt,
        code=c.text(attempt.code),
        message=c.text(attempt.message),
        excerpt=c.optional(attempt.excerpt),
    )


def sanitize_sample(sample: SampleResult) -> SampleResult:
    """A copy of `sample` that every database can store: unstorable characters in any text it
    carries (answers, tool names and arguments, scorer reasons, served model, fingerprint, stop
    reason, error and attempt messages) replaced by U+FFFD, and `sanitized` set on the sample
    and on each turn that changed."""
    c = _Cleaner()
    turns = [_turn(t) for t in sample.turns]
    clean = dataclasses.replace(
        sample,
        model_id=c.text(sample.model_id),
        canary_id=c.text(sample.canary_id),
        canary_hash=c.text(sample.canary_hash),
        reason=c.text(sample.reason),
        turns=turns,
        attempts=[_attempt(c, a) for a in sample.attempts],
        served_model=c.optional(sample.served_model),
        fingerprint=c.optional(sample.fingerprint),
        stop_reason=c.optional(sample.stop_reason),
        error_code=c.optional(sample.error_code),
        error_message=c.optional(sample.error_message),
    )
    if c.changed or any(t.sanitized for t in turns):
        clean.sanitized = True
    return clean


def sanitize_response(response: ChatResponse) -> tuple[ChatResponse, bool]:
    """`response` with unstorable text replaced, and whether anything was. Applied as a reply
    arrives, before it is scored or sent back in the next turn: the SDKs cannot encode a lone
    surrogate into a request, so a conversation that echoed one would fail on its next turn."""
    c = _Cleaner()
    clean = dataclasses.replace(
        response,
        text=c.text(response.text),
        tool_calls=tuple(_call(c, call) for call in response.tool_calls),
        served_model=c.optional(response.served_model),
        stop_reason=c.optional(response.stop_reason),
        fingerprint=c.optional(response.fingerprint),
        request_id=c.optional(response.request_id),
        refusal=c.optional(response.refusal),
        reasoning=tuple(c.value(block) for block in response.reasoning),
    )
    return (clean, True) if c.changed else (response, False)
