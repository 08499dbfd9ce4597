"""What the store hands back, and the mapping between records and table rows.

The transcript is JSON text rather than a turns table: it is written once, read whole, and
never queried by field, so one column keeps the hot path to one INSERT per sample."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from canary.records import Attempt, Outcome, SampleResult, ScoreRecord, ToolCall, TurnRecord


@dataclass(frozen=True)
class RunRow:
    id: str
    day: date
    started_at: datetime
    finished_at: datetime | None
    status: str
    host: str
    pid: int
    canary_version: str
    model_ids: tuple[str, ...]
    n_planned: int
    n_done: int


@dataclass(frozen=True)
class SampleRow:
    """One stored sample: its columns, the parsed transcript and its attempts in order."""

    id: int
    run_id: str
    day: date
    model_id: str
    canary_id: str
    canary_hash: str
    sample_index: int
    outcome: Outcome
    score: float | None
    reason: str
    failed_turn: int | None
    n_attempts: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    latency_s: float
    served_model: str | None
    fingerprint: str | None
    stop_reason: str | None
    error_code: str | None
    error_message: str | None
    started_at: datetime
    finished_at: datetime
    turns: list[TurnRecord]
    attempts: list[Attempt]
    sanitized: bool = False  # some text was altered to be storable (canary.textsafe)

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.model_id, self.canary_id, self.canary_hash, self.sample_index)


# --------------------------------------------------------------------------- transcript


def _turn_to_json(turn: TurnRecord) -> dict[str, Any]:
    data = {
        "index": turn.index,
        "sent": turn.sent,
        "reply": turn.reply,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments, "raw_arguments": c.raw_arguments}
            for c in turn.tool_calls
        ],
        "input_tokens": turn.input_tokens,
        "output_tokens": turn.output_tokens,
        "latency_s": turn.latency_s,
        "served_model": turn.served_model,
        "stop_reason": turn.stop_reason,
        "fingerprint": turn.fingerprint,
        "scores": [
            {"scorer": s.scorer, "passed": s.passed, "score": s.score, "reason": s.reason}
            for s in turn.scores
        ],
        **_turn_flags(turn),
    }
    if turn.sanitized:  # only when set: most transcripts never need it
        data["sanitized"] = True
    return data


def _turn_flags(turn: TurnRecord) -> dict[str, Any]:
    """Written only when set, so ordinary transcripts stay as they were."""
    out: dict[str, Any] = {}
    if turn.cut:
        out["cut"], out["reply_chars"] = True, turn.reply_chars
    if turn.refusal is not None:
        out["refusal"] = turn.refusal
    if turn.failure is not None:
        out["failure"] = turn.failure
    return out


def _turn_from_json(data: Mapping[str, Any]) -> TurnRecord:
    return TurnRecord(
        index=data["index"],
        sent=data["sent"],
        reply=data.get("reply", ""),
        tool_calls=[
            ToolCall(
                id=c["id"], name=c["name"], arguments=c.get("arguments"), raw_arguments=c["raw_arguments"]
            )
            for c in data.get("tool_calls", ())
        ],
        input_tokens=data.get("input_tokens", 0),
        output_tokens=data.get("output_tokens", 0),
        latency_s=data.get("latency_s", 0.0),
        served_model=data.get("served_model"),
        stop_reason=data.get("stop_reason"),
        fingerprint=data.get("fingerprint"),
        scores=[ScoreRecord(**s) for s in data.get("scores", ())],
        sanitized=bool(data.get("sanitized", False)),
        reply_chars=data.get("reply_chars"),
        cut=bool(data.get("cut", False)),
        refusal=data.get("refusal"),
        failure=data.get("failure"),
    )


def encode_turns(turns: list[TurnRecord]) -> str:
    # ensure_ascii=False: a 1 MB non-ASCII answer stays ~1 MB instead of growing up to 6x.
    return json.dumps([_turn_to_json(t) for t in turns], ensure_ascii=False, separators=(",", ":"))


def decode_turns(text: str) -> list[TurnRecord]:
    return [_turn_from_json(t) for t in json.loads(text)]


# --------------------------------------------------------------------------- rows


def sample_values(run_id: str, s: SampleResult) -> dict[str, Any]:
    """The row of a sample already passed through `canary.textsafe.sanitize_sample`."""
    return {
        "run_id": run_id,
        "day": s.day,
        "model_id": s.model_id,
        "canary_id": s.canary_id,
        "canary_hash": s.canary_hash,
        "sample_index": s.sample_index,
        "outcome": s.outcome,
        "score": s.score,
        "reason": s.reason,
        "failed_turn": s.failed_turn,
        "n_attempts": len(s.attempts),
        "input_tokens": s.input_tokens,
        "output_tokens": s.output_tokens,
        "cost_usd": s.cost_usd,
        "latency_s": s.latency_s,
        "served_model": s.served_model,
        "fingerprint": s.fingerprint,
        "stop_reason": s.stop_reason,
        "error_code": s.error_code,
        "error_message": s.error_message,
        "started_at": s.started_at,
        "finished_at": s.finished_at,
        "transcript": encode_turns(s.turns),
        "sanitized": s.sanitized,
    }


def attempt_values(sample_id: int, attempts: list[Attempt]) -> list[dict[str, Any]]:
    return [
        {
            "sample_id": sample_id,
            "seq": seq,
            "number": a.number,
            "turn": a.turn,
            "started_at": a.started_at,
            "latency_s": a.latency_s,
            "status": a.status,
            "code": a.code,
            "message": a.message,
            "retry_after_s": a.retry_after_s,
            "excerpt": a.excerpt,
        }
        for seq, a in enumerate(attempts)
    ]


def attempt_from_row(row: Mapping[str, Any]) -> Attempt:
    return Attempt(
        number=row["number"],
        started_at=row["started_at"],
        latency_s=row["latency_s"],
        status=row["status"],
        code=row["code"],
        message=row["message"],
        retry_after_s=row["retry_after_s"],
        turn=row["turn"],
        excerpt=row.get("excerpt"),
    )


def sample_from_row(row: Mapping[str, Any], attempts: list[Attempt]) -> SampleRow:
    transcript = row.get("transcript")
    return SampleRow(
        id=row["id"],
        run_id=row["run_id"],
        day=row["day"],
        model_id=row["model_id"],
        canary_id=row["canary_id"],
        canary_hash=row["canary_hash"],
        sample_index=row["sample_index"],
        outcome=row["outcome"],
        score=row["score"],
        reason=row["reason"],
        failed_turn=row["failed_turn"],
        n_attempts=row["n_attempts"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cost_usd=row["cost_usd"],
        latency_s=row["latency_s"],
        served_model=row["served_model"],
        fingerprint=row["fingerprint"],
        stop_reason=row["stop_reason"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        turns=decode_turns(transcript) if transcript is not None else [],
        attempts=attempts,
        sanitized=bool(row.get("sanitized", False)),
    )


def run_from_row(row: Mapping[str, Any]) -> RunRow:
    return RunRow(
        id=row["id"],
        day=row["day"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        status=row["status"],
        host=row["host"],
        pid=row["pid"],
        canary_version=row["canary_version"],
        model_ids=tuple(json.loads(row["model_ids"])),
        n_planned=row["n_planned"],
        n_done=row["n_done"],
    )
