"""Reading a reply body with bounded memory, whatever the server sends.

The SDKs read a whole body (or a whole server-sent event) into memory and parse it there, so a
100 MB answer costs several hundred MB per sample. canary reads the bytes itself instead: JSON is
parsed incrementally, every string longer than `SHORT_STRING` is kept only up to the reply's
text budget (`MAX_REPLY_CHARS`) and the rest is counted, not kept (`CutText.full_length`).
Anything that is not JSON, or whose structure alone exceeds `MAX_STRUCTURE_CHARS`, raises
`BadBody`, which the adapters turn into a `bad_response` service failure. Bytes that are not
UTF-8 inside a string are kept as lone surrogates, which canary.textsafe stores as U+FFFD with
the `sanitized` flag."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from canary.providers.errors import BadBody, redact

MAX_REPLY_CHARS = 1_000_000  # text kept per reply (answer, tool arguments, thinking); the rest is counted
MAX_STRUCTURE_CHARS = 1_000_000  # keys, short strings, numbers: a real reply's skeleton is tiny
SHORT_STRING = 256  # strings up to this long (ids, types, model names) are always kept whole
VALUE_COST = 8  # each value also costs this much structure budget: Python objects are not free
MAX_DEPTH = 64
MAX_TOKEN = 512  # longest number or literal
EXCERPT_CHARS = 512  # of a bad body, kept (redacted) on the attempt
SSE_DONE = b"[DONE]"

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_NUMBERISH = re.compile(r"[-+0-9.eE]+")
_SPACE = " \t\r\n"
_HIGH_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}$")


class CutText(str):
    """A string of which only a prefix was kept; `full_length` is how long it really was."""

    full_length: int

    def __new__(cls, kept: str, full_length: int) -> CutText:
        self = super().__new__(cls, kept)
        self.full_length = full_length
        return self


def full_length(text: str) -> int:
    """The length the server sent, including any part that was not kept."""
    return text.full_length if isinstance(text, CutText) else len(text)


class Budget:
    """What one reply may keep: text beyond `text` chars is counted, structure beyond is an error."""

    def __init__(self, text: int = MAX_REPLY_CHARS, structure: int = MAX_STRUCTURE_CHARS) -> None:
        self.text = text
        self.structure = structure

    def charge_structure(self, n: int) -> None:
        self.structure -= n
        if self.structure < 0:
            raise BadBody("reply structure too large")


class _Str:
    __slots__ = ("is_key", "kept", "kept_len", "length", "long", "raw")

    def __init__(self, is_key: bool) -> None:
        self.is_key = is_key
        self.long = False  # longer than SHORT_STRING: kept within the text budget
        self.kept: list[str] = []
        self.kept_len = 0
        self.length = 0
        self.raw = ""  # undecoded tail carried to the next chunk (a split escape)


class CappedJson:
    """An incremental JSON parser: `feed()` bytes as they arrive, `close()` for the value."""

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget or Budget()
        # Bytes that are not UTF-8 inside an otherwise valid reply become lone surrogates
        # (surrogateescape) rather than a bad body: the sanitizer (canary.textsafe) shows them as
        # U+FFFD and flags the turn, so one odd byte in an answer keeps the answer. Outside a
        # string they are not JSON, so the body is still a bad_response.
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._buf = ""
        self._stack: list[Any] = []  # open containers: dict or list
        self._keys: list[str | None] = []  # pending key per open container (None for lists)
        self._state = "value"  # value | after | key | colon | done
        self._str: _Str | None = None
        self._result: Any = None
        self._started = False

    def feed(self, data: bytes) -> None:
        try:
            text = self._decoder.decode(data)
        except UnicodeDecodeError:
            raise BadBody("not UTF-8") from None
        if text:
            self._buf += text
            self._run(final=False)

    def close(self) -> Any:
        try:
            self._buf += self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise BadBody("not UTF-8") from None
        self._run(final=True)
        if self._state != "done":
            raise BadBody("empty body" if not self._started else "JSON cut short")
        return self._result

    # ---------------------------------------------------------------- the machine

    def _run(self, *, final: bool) -> None:
        buf, pos, n = self._buf, 0, len(self._buf)
        while pos < n:
            if self._str is not None:
                pos = self._string(buf, pos, final)
                if self._str is not None:  # needs more input
                    break
                continue
            ch = buf[pos]
            if ch in _SPACE:
                pos += 1
                continue
            state = self._state
            if state == "done":
                raise BadBody("data after the JSON value")
            if state == "value":
                self._started = True
                if ch == '"':
                    self._str = _Str(is_key=False)
                    pos += 1
                elif ch in "{[":
                    if len(self._stack) >= MAX_DEPTH:
                        raise BadBody("JSON nested too deep")
                    self.budget.charge_structure(1)
                    self._stack.append({} if ch == "{" else [])
                    self._keys.append(None)
                    self._state = "key" if ch == "{" else "value"
                    pos += 1
                elif ch == "]" and self._stack and isinstance(self._stack[-1], list) and not self._stack[-1]:
                    pos += 1
                    self._close_container()
                else:
                    end = self._scalar(buf, pos, final)
                    if end < 0:
                        break  # the token may continue in the next chunk
                    pos = end
            elif state == "key":
                if ch == '"':
                    self._str = _Str(is_key=True)
                    pos += 1
                elif ch == "}" and not self._stack[-1]:
                    pos += 1
                    self._close_container()
                else:
                    raise BadBody("invalid JSON (expected a key)")
            elif state == "colon":
                if ch != ":":
                    raise BadBody("invalid JSON (expected ':')")
                self._state = "value"
                pos += 1
            else:  # after a value inside a container
                top = self._stack[-1]
                if ch == ",":
                    self._state = "key" if isinstance(top, dict) else "value"
                elif (ch == "}" and isinstance(top, dict)) or (ch == "]" and isinstance(top, list)):
                    self._close_container()
                else:
                    raise BadBody("invalid JSON (expected ',')")
                pos += 1
        self._buf = buf[pos:]
        if len(self._buf) > MAX_TOKEN + 16:
            raise BadBody("JSON token too long")

    def _scalar(self, buf: str, pos: int, final: bool) -> int:
        """Parse a number or literal at pos; -1 when it may continue past the buffer's end."""
        for word, value in (("true", True), ("false", False), ("null", None)):
            if buf.startswith(word, pos):
                end = pos + len(word)
                if end == len(buf) and not final:
                    return -1
                self._value(value, len(word))
                return end
            if not final and word.startswith(buf[pos:]) and len(buf) - pos < len(word):
                return -1
        span = _NUMBERISH.match(buf, pos)
        end = span.end() if span is not None else pos
        if end == len(buf) and not final:
            if end - pos > MAX_TOKEN:
                raise BadBody("JSON number too long")
            return -1
        match = _NUMBER.fullmatch(buf, pos, end)
        if match is None:
            raise BadBody(f"invalid JSON (unexpected {buf[pos]!r})")
        token = match.group()
        value: Any = float(token) if any(c in token for c in ".eE") else int(token)
        self._value(value, len(token))
        return end

    def _string(self, buf: str, pos: int, final: bool) -> int:
        """Consume string content from pos; returns the new position (the string may stay open)."""
        s = self._str
        assert s is not None
        end = pos
        while True:
            end = buf.find('"', end)
            if end < 0:
                break
            slashes = 0
            while end - slashes - 1 >= pos and buf[end - slashes - 1] == "\\":
                slashes += 1
            if end - slashes == pos:  # the run of backslashes may go on in the carried tail
                slashes += len(s.raw) - len(s.raw.rstrip("\\"))
            if slashes % 2 == 0:
                break
            end += 1
        closed = end >= 0
        raw = s.raw + (buf[pos:end] if closed else buf[pos:])
        s.raw = ""
        if closed:
            self._take(s, _decode(raw))
            self._str = None
            self._finish_string(s)
            return end + 1
        text, rest = _decode_partial(raw)
        s.raw = rest
        if len(rest) > 16:
            raise BadBody("invalid JSON string escape")
        if text:
            self._take(s, text)
        if final:
            raise BadBody("JSON cut short (unterminated string)")
        return len(buf)

    def _take(self, s: _Str, text: str) -> None:
        s.length += len(text)
        if s.is_key or (not s.long and s.kept_len + len(text) <= SHORT_STRING):
            self.budget.charge_structure(len(text))  # keys, ids, types: always kept whole
            s.kept.append(text)
            s.kept_len += len(text)
            return
        if not s.long:  # it turned out long: what it kept so far moves to the text budget
            s.long = True
            self.budget.structure += s.kept_len
            room = max(0, self.budget.text)
            if s.kept_len > room:
                s.kept = ["".join(s.kept)[:room]]
                s.kept_len = room
            self.budget.text -= s.kept_len
        keep = min(len(text), max(0, self.budget.text))
        if keep:
            self.budget.text -= keep
            s.kept.append(text[:keep])
            s.kept_len += keep

    def _finish_string(self, s: _Str) -> None:
        kept = "".join(s.kept)
        if s.is_key:
            self._keys[-1] = kept
            self._state = "colon"
            return
        self._value(kept if len(kept) == s.length else CutText(kept, s.length), 0)

    def _value(self, value: Any, cost: int) -> None:
        self.budget.charge_structure(cost + VALUE_COST)
        if not self._stack:
            self._result = value
            self._state = "done"
            return
        top = self._stack[-1]
        if isinstance(top, dict):
            key = self._keys[-1]
            assert key is not None
            top[key] = value
            self._keys[-1] = None
        else:
            top.append(value)
        self._state = "after"

    def _close_container(self) -> None:
        value = self._stack.pop()
        self._keys.pop()
        self._value(value, 0)


def _decode(raw: str) -> str:
    try:
        return json.loads('"' + raw + '"')
    except ValueError:
        raise BadBody("invalid JSON string") from None


def _decode_partial(raw: str) -> tuple[str, str]:
    """Decode the longest prefix of an open string's content that ends on a whole escape
    (a high surrogate waits for its pair); returns (text, undecoded rest)."""
    for cut in range(0, min(13, len(raw) + 1)):
        part = raw[: len(raw) - cut]
        try:
            text = json.loads('"' + part + '"')
        except ValueError:
            continue
        if _HIGH_SURROGATE_ESCAPE.search(part):  # keep a surrogate pair together
            try:
                text = json.loads('"' + part[:-6] + '"')
                part = part[:-6]
            except ValueError:
                pass  # a literal backslash before "ud8..": nothing to hold back
        return text, raw[len(part) :]
    raise BadBody("invalid JSON string")


# --------------------------------------------------------------------------- whole bodies and streams


class Excerpt:
    """The first bytes of a body, for the attempt record when the body turns out to be bad."""

    def __init__(self, limit: int = EXCERPT_CHARS * 4) -> None:
        self._limit = limit
        self._head = bytearray()
        self.total_bytes = 0

    @property
    def full(self) -> bool:
        return len(self._head) >= self._limit

    def add(self, data: bytes) -> None:
        self.total_bytes += len(data)
        room = self._limit - len(self._head)
        if room > 0:
            self._head += data[:room]

    def text(self, secrets: Iterable[str | None] = ()) -> str:
        shown = bytes(self._head).decode("utf-8", errors="replace").replace("\x00", "\ufffd")
        shown = redact(shown, secrets)
        return shown if len(shown) <= EXCERPT_CHARS else shown[: EXCERPT_CHARS - 1] + "…"


async def read_json(chunks: AsyncIterator[bytes], excerpt: Excerpt, budget: Budget | None = None) -> Any:
    """A whole JSON body, read with bounded memory."""
    parser = CappedJson(budget)
    async for chunk in chunks:
        excerpt.add(chunk)
        parser.feed(chunk)
    return parser.close()


@dataclass
class SseEvent:
    event: str | None
    data: Any  # the parsed JSON data; None for a `[DONE]` marker
    done: bool = False


class _Pending:
    """One event being read: its name and its data lines fed straight into a parser."""

    def __init__(self) -> None:
        self.event: str | None = None
        self.head = bytearray()  # the data's first bytes, until it is clear it is not `[DONE]`
        self.parser: CappedJson | None = None
        self.lines = 0

    def new_line(self) -> None:
        if self.lines:
            self.feed(b"\n")
        self.lines += 1

    def feed(self, piece: bytes) -> None:
        if self.parser is not None:
            self.parser.feed(piece)
            return
        self.head += piece
        if len(self.head) > len(SSE_DONE) + 8:
            self.parser = CappedJson()
            self.parser.feed(bytes(self.head))
            self.head.clear()

    def finish(self) -> SseEvent | None:
        if self.parser is None:
            if not self.lines:
                return None  # an event without data is ignored (as the SDKs do)
            if bytes(self.head).strip() == SSE_DONE:
                return SseEvent(self.event, None, done=True)
            self.parser = CappedJson()
            self.parser.feed(bytes(self.head))
        return SseEvent(self.event, self.parser.close())


async def read_sse(
    chunks: AsyncIterator[bytes], excerpt: Excerpt, content_type: str | None = None
) -> AsyncIterator[SseEvent]:
    """Server-sent events with their JSON data. A data line is never held whole: its bytes go
    to its event's incremental parser as they arrive. (JSON ignores a trailing CR.) A body that
    says it is HTML or JSON is refused once its first bytes are in `excerpt`."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype in ("text/html", "application/json", "text/plain", "application/xml", "text/xml"):
        async for chunk in chunks:
            excerpt.add(chunk)
            if excerpt.full:
                break
        raise BadBody(f"expected an event stream, got {ctype}")
    pending = _Pending()
    mode = "field"  # field: reading a field name | data | event: reading its value | skip
    field = bytearray()
    value = bytearray()
    strip_space = False
    async for chunk in chunks:
        excerpt.add(chunk)
        start = 0
        while start < len(chunk):
            nl = chunk.find(b"\n", start)
            stop = len(chunk) if nl < 0 else nl
            piece = chunk[start:stop]
            start = stop + 1 if nl >= 0 else len(chunk)
            if mode == "field":
                colon = piece.find(b":")
                if colon < 0:
                    field += piece
                    if len(field) > 64:
                        raise BadBody("invalid event stream (field name too long)")
                    if nl >= 0:
                        line = bytes(field).rstrip(b"\r")
                        field.clear()
                        if not line:  # a blank line dispatches the event
                            event = pending.finish()
                            pending = _Pending()
                            if event is not None:
                                yield event
                        elif line == b"data":
                            pending.new_line()
                    continue
                name = bytes(field + piece[:colon])
                field.clear()
                piece = piece[colon + 1 :]
                strip_space = True
                mode = {b"data": "data", b"event": "event"}.get(name, "skip")
                if mode == "data":
                    pending.new_line()
            if strip_space and piece:
                piece = piece[1:] if piece.startswith(b" ") else piece
                strip_space = False
            if mode == "data":
                if piece:
                    pending.feed(piece)
            elif mode == "event":
                value += piece
                if len(value) > 256:
                    raise BadBody("invalid event stream (event name too long)")
            if nl >= 0:
                if mode == "event":
                    pending.event = bytes(value).decode("utf-8", errors="replace").strip()
                    value.clear()
                mode, strip_space = "field", False
    # An event not closed by a blank line is discarded, as the SSE specification says.


# --------------------------------------------------------------------------- reading parsed replies


class TextSink:
    """Text arriving in pieces (stream deltas), kept within a shared `Budget`, the rest counted."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.parts: list[str] = []
        self.kept = 0
        self.chars = 0  # as the server sent it
        self.cut = False

    def add(self, piece: str) -> None:
        self.chars += full_length(piece)
        if isinstance(piece, CutText):
            self.cut = True
        keep = min(len(piece), max(0, self.budget.text))
        if keep < len(piece):
            self.cut = True
        if keep:
            self.budget.text -= keep
            self.parts.append(str(piece[:keep]) if keep < len(piece) else str(piece))
            self.kept += keep

    def value(self) -> str:
        text = "".join(self.parts)
        return CutText(text, self.chars) if self.cut else text


def join_texts(texts: Iterable[str]) -> str:
    """Texts joined; a CutText (with the real total length) if any part was cut."""
    parts = list(texts)
    text = "".join(parts)
    total = sum(full_length(t) for t in parts)
    return CutText(text, total) if any(isinstance(t, CutText) for t in parts) else text


def any_cut(value: Any) -> bool:
    if isinstance(value, CutText):
        return True
    if isinstance(value, dict):
        return any(any_cut(v) for v in value.values())
    if isinstance(value, list):
        return any(any_cut(v) for v in value)
    return False


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value) if not isinstance(value, str) else str, "a number"
    )


def need(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    """`data[key]` if it is of `kind`; BadBody naming the field otherwise."""
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        what = "lacks" if value is None else "has a malformed"
        raise BadBody(f"{where} {what} `{key}`")
    return value


def count(value: Any) -> int:
    """A token count; anything but a non-negative integer counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def text_or_none(value: Any) -> str | None:
    return str(value) if isinstance(value, str) else None


def text_or_empty(value: Any) -> str:
    return value if isinstance(value, str) else ""
