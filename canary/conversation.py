"""Drive one probe's conversation: single, multi_turn (replies fed back) or tool_call.

Returns turns and attempts; scoring is applied per turn as the conversation goes so that a
multi-turn transcript records which turn failed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from canary.config.models import MultiTurnCanary, SingleCanary, ToolCallCanary
from canary.plan import Probe
from canary.providers.errors import one_line
from canary.records import (
    Attempt,
    ChatRequest,
    ChatResponse,
    Message,
    ProviderError,
    SampleResult,
    ScoreRecord,
    ToolSpec,
    TurnRecord,
)
from canary.retry import call_with_retry
from canary.scoring.base import ScoreInput
from canary.textsafe import sanitize_response

TRUNCATED = frozenset({"max_tokens", "length"})  # Anthropic stop_reason, OpenAI finish_reason
REFUSED = frozenset({"refusal", "content_filter"})
FAILURE_TEXT = {
    "truncated": "the reply was cut at max_tokens",
    "refusal": "the model refused",
    "empty_output": "the model returned no text",
}


class ScorerCrashed(Exception):
    """A scorer raised: the harness, not the model, is at fault (harness_error)."""


@dataclass
class Transcript:
    turns: list[TurnRecord] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    error: ProviderError | None = None


def _tool_result_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


async def _score(
    probe: Probe, turn: TurnRecord, n_turns: int, names: list[str | None], inp: ScoreInput
) -> None:
    for bound in probe.canary.scorers:
        if n_turns > 1 and not bound.applies_to(turn.index, n_turns, names):
            continue
        try:
            verdict = await bound.run(inp)
        except Exception as exc:  # a scorer bug must not masquerade as a model failure
            raise ScorerCrashed(f"scorer `{bound.label}` raised {type(exc).__name__}: {exc}") from exc
        turn.scores.append(ScoreRecord(bound.label, verdict.passed, verdict.score, verdict.reason))


async def _call(provider, probe: Probe, request: ChatRequest, transcript: Transcript, turn: TurnRecord):
    outcome = await call_with_retry(provider, request, probe.model.retry, turn=turn.index)
    transcript.attempts.extend(outcome.attempts)
    if outcome.response is None:
        transcript.error = outcome.error
        return None
    r, turn.sanitized = sanitize_response(outcome.response)  # before it is scored or sent back
    turn.reply, turn.tool_calls = r.text, list(r.tool_calls)
    turn.input_tokens, turn.output_tokens, turn.latency_s = r.input_tokens, r.output_tokens, r.latency_s
    turn.served_model, turn.stop_reason, turn.fingerprint = r.served_model, r.stop_reason, r.fingerprint
    if r.cut:
        turn.cut, turn.reply_chars = True, r.text_chars
    refusal = refusal_of(r)
    if refusal is not None:
        turn.failure, turn.refusal = "refusal", refusal
    elif r.stop_reason in TRUNCATED and not probe.canary.canary.allow_truncated:
        turn.failure = "truncated"
    return r


def refusal_of(r: ChatResponse) -> str | None:
    """The refusal text when the model refused (Anthropic `stop_reason: refusal`, OpenAI
    `finish_reason: content_filter` or a `message.refusal`), else None."""
    if r.refusal:
        return r.refusal
    if r.stop_reason in REFUSED:
        return r.text
    return None


def _empty(turn: TurnRecord) -> bool:
    return not turn.reply.strip() and not turn.tool_calls


async def converse(provider, probe: Probe) -> Transcript:
    canary = probe.canary.canary
    t = Transcript()
    system = canary.system
    if isinstance(canary, MultiTurnCanary):
        names = [turn.name for turn in canary.turns]
        messages: list[Message] = []
        for index, user_turn in enumerate(canary.turns, start=1):
            messages.append(Message("user", user_turn.user))
            turn = TurnRecord(index, user_turn.user)
            t.turns.append(turn)
            response = await _call(provider, probe, ChatRequest(system, tuple(messages)), t, turn)
            if response is None:
                return t
            messages.append(
                Message("assistant", response.text, response.tool_calls, reasoning=response.reasoning)
            )
            inp = ScoreInput(response.text, response.tool_calls, index, canary, tuple(messages), response)
            await _score(probe, turn, len(canary.turns), names, inp)
            if not response.text.strip() and not response.tool_calls:
                # An empty assistant turn cannot be sent back (the Messages API rejects it), and
                # the sample has already failed: stop here rather than invent a reply.
                turn.failure = turn.failure or "empty_output"
                break
        return t
    if isinstance(canary, SingleCanary):
        turn = TurnRecord(1, canary.prompt)
        t.turns.append(turn)
        messages = [Message("user", canary.prompt)]
        response = await _call(provider, probe, ChatRequest(system, tuple(messages)), t, turn)
        if response is not None:
            messages.append(Message("assistant", response.text, reasoning=response.reasoning))
            inp = ScoreInput(response.text, response.tool_calls, 1, canary, tuple(messages), response)
            await _score(probe, turn, 1, [None], inp)
        return t
    assert isinstance(canary, ToolCallCanary)
    tools = tuple(ToolSpec(d.name, d.description, d.parameters) for d in canary.tools)
    messages = [Message("user", canary.prompt)]
    turn = TurnRecord(1, canary.prompt)
    t.turns.append(turn)
    response = await _call(provider, probe, ChatRequest(system, tuple(messages), tools), t, turn)
    if response is None:
        return t
    all_calls = list(response.tool_calls)
    messages.append(Message("assistant", response.text, response.tool_calls, reasoning=response.reasoning))
    final, final_turn = response, turn
    fed = [c for c in response.tool_calls if c.name in canary.tool_results]
    if fed:
        for call in fed:
            messages.append(
                Message(
                    "tool",
                    _tool_result_text(canary.tool_results[call.name]),
                    tool_call_id=call.id,
                    tool_name=call.name,
                )
            )
        sent = "\n".join(f"[{c.name} result] {_tool_result_text(canary.tool_results[c.name])}" for c in fed)
        final_turn = TurnRecord(2, sent)
        t.turns.append(final_turn)
        final = await _call(provider, probe, ChatRequest(system, tuple(messages), tools), t, final_turn)
        if final is None:
            return t
        all_calls.extend(final.tool_calls)
        messages.append(Message("assistant", final.text, final.tool_calls, reasoning=final.reasoning))
    inp = ScoreInput(final.text, tuple(all_calls), final_turn.index, canary, tuple(messages), final)
    await _score(probe, final_turn, 1, [None], inp)
    return t


def _now() -> datetime:
    return datetime.now(UTC)


async def run_probe(provider, probe: Probe) -> SampleResult:
    """One sample, start to finish; never raises for model or scorer trouble, nor for a bug of
    canary's own: whatever escapes becomes this sample's `harness_error`, never the run's end."""
    started = _now()
    model = probe.model.config
    base = dict(
        day=probe.day,
        model_id=model.id,
        canary_id=probe.canary.id,
        canary_hash=probe.canary.hash,
        sample_index=probe.sample_index,
        started_at=started,
    )
    try:
        t = await converse(provider, probe)
    except ScorerCrashed as exc:
        return SampleResult(
            **base,
            outcome="harness_error",
            finished_at=_now(),
            reason=str(exc)[:500],
            error_code="scorer",
            error_message=str(exc)[:500],
        )
    except Exception as exc:  # canary's own bug: this sample records it, the others go on
        text = one_line(f"canary bug: {type(exc).__name__}: {exc}")
        return SampleResult(
            **base,
            outcome="harness_error",
            finished_at=_now(),
            reason=text,
            error_code="harness",
            error_message=text,
        )
    turns = t.turns
    in_tok = sum(turn.input_tokens for turn in turns)
    out_tok = sum(turn.output_tokens for turn in turns)
    last = next((turn for turn in reversed(turns) if turn.served_model), None)
    result = SampleResult(
        **base,
        outcome="pass",
        finished_at=_now(),
        turns=turns,
        attempts=t.attempts,
        input_tokens=in_tok,
        output_tokens=out_tok,
        cost_usd=model.price.cost(in_tok, out_tok) if model.price else None,
        latency_s=sum(turn.latency_s for turn in turns),
        served_model=last.served_model if last else None,
        fingerprint=last.fingerprint if last else None,
        stop_reason=last.stop_reason if last else None,
    )
    if t.error is not None:
        result.outcome = "unavailable" if t.error.retryable else "error"
        result.error_code, result.error_message = t.error.code, t.error.message
        result.reason = t.error.message
        return result
    scores = [s for turn in turns for s in turn.scores]
    result.score = sum(s.score for s in scores) / len(scores) if scores else None
    failed = next((turn for turn in turns if turn.passed is False), None)
    if failed is not None:
        if failed.failure is None and _empty(failed):
            failed.failure = "empty_output"  # the scorers failed an empty reply: say so first
        result.outcome = "fail"
        result.failed_turn = failed.index
        prefix = f"turn {failed.index}: " if len(turns) > 1 else ""
        if failed.failure is not None:
            detail = FAILURE_TEXT[failed.failure]
            if failed.failure == "refusal" and failed.refusal:
                detail += f": {one_line(failed.refusal)}"
            elif failed.failure == "truncated":
                detail += f" (stop_reason {failed.stop_reason})"
            result.reason = f"{prefix}{failed.failure}: {detail}"
        else:
            first = next(s for s in failed.scores if not s.passed)
            result.reason = f"{prefix}{first.scorer}: {first.reason}"
    return result
