"""Turn one day's series into findings: for each (model, scope, signal), firing, ok or held.

A series without a baseline yet is held as "not judged yet: 3 of 14 baseline days", never ok.
The model-level usage signals (tokens, latency, cost) compare today with the baseline over the
same canary versions: only canaries whose current content has data both today and in the
baseline count, so editing one canary (a new content hash) or adding one never looks like the
model changing. Pure given the series; the store queries that feed it live in canary.store.series."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from canary.alerts.findings import ALL, Finding, Status
from canary.config.models import DetectConfig, ModelConfig, SignalsConfig
from canary.detect import evaluate
from canary.store.series import DayCounts


@dataclass
class ModelDay:
    """Everything known about one model up to and including `day`."""

    model: ModelConfig
    day: date
    overall: Mapping[date, DayCounts]
    per_canary: Mapping[str, Mapping[date, DayCounts]]
    # per canary (current content only), per day: the latency of every scored sample
    latencies: Mapping[str, Mapping[date, Sequence[float]]] = field(default_factory=dict)
    served: Mapping[date, set[tuple[str | None, str | None]]] = field(default_factory=dict)


def pct(x: float) -> str:
    return f"{x:.0%}" if x >= 0.1 else f"{x:.1%}"


def _history(series: Mapping[date, DayCounts], day: date, days: int) -> list[tuple[date, int, int]]:
    start = day - timedelta(days=days)
    out = []
    for i in range(days):
        d = start + timedelta(days=i)
        c = series.get(d)
        out.append((d, c.passes, c.scored) if c else (d, 0, 0))
    return out


def _baseline_days(series: Mapping[date, DayCounts], day: date, signals: SignalsConfig) -> list[DayCounts]:
    start = day - timedelta(days=signals.baseline_days)
    return [c for d, c in sorted(series.items()) if start <= d < day and c.scored > 0]


def quality(
    md: ModelDay, detect: DetectConfig, *, held_reason: str | None, history_days: int
) -> list[Finding]:
    out = []
    scopes = [(ALL, md.overall)] + sorted(md.per_canary.items())
    for scope, series in scopes:
        where = "all canaries" if scope == ALL else scope
        today = series.get(md.day)
        if held_reason and scope == ALL:
            out.append(
                Finding(md.model.id, scope, "quality", "held", f"{md.model.id} quality: {held_reason}")
            )
            continue
        if today is None or today.scored == 0 or held_reason:
            out.append(
                Finding(md.model.id, scope, "quality", "held", f"{md.model.id} {where}: not judged today")
            )
            continue
        rate_text = f"{pct(today.passes / today.scored)} ({today.passes}/{today.scored})"
        decision = evaluate(_history(series, md.day, history_days), (today.passes, today.scored), detect)
        if not decision.alarm and decision.warming is not None:
            have, need = decision.warming
            out.append(
                Finding(
                    md.model.id,
                    scope,
                    "quality",
                    "held",
                    f"{md.model.id} quality on {where}: not judged yet: {have} of {need} baseline days",
                    rate_text,
                    None,
                    decision.reason,
                    warming=decision.warming,
                )
            )
            continue
        baseline = pct(decision.baseline) if decision.baseline is not None else None
        # No baseline (a new series): not judged, so an open alert is neither kept nor resolved.
        status: Status = "firing" if decision.alarm else ("ok" if decision.baseline is not None else "held")
        summary = f"{md.model.id} pass rate on {where}: {rate_text} today" + (
            f" vs {baseline} baseline" if baseline is not None else ""
        )
        out.append(
            Finding(md.model.id, scope, "quality", status, summary, rate_text, baseline, decision.reason)
        )
    return out


def availability(md: ModelDay, signals: SignalsConfig, detect: DetectConfig) -> tuple[Finding, str | None]:
    """The availability finding, and why quality is held today (None: quality can be judged)."""
    today = md.overall.get(md.day)
    if today is None or today.total == 0:
        return Finding(
            md.model.id, ALL, "availability", "held", f"{md.model.id}: no samples today"
        ), "no samples today"
    share = today.unavailable / today.total
    text = f"{pct(share)} unavailable ({today.unavailable}/{today.total})"
    firing = share > signals.max_unavailable
    finding = Finding(
        md.model.id,
        ALL,
        "availability",
        "firing" if firing else "ok",
        f"{md.model.id} availability: {text} today",
        today=text,
        baseline=f"limit {pct(signals.max_unavailable)}",
        detail="service failures after retries (429/5xx/529/timeouts); quality alerts are held meanwhile"
        if firing
        else "",
    )
    held = None
    if firing:
        held = f"held: availability failing today ({text})"
    elif today.scored < detect.min_trials:
        held = f"held: only {today.scored} scored samples today (< {detect.min_trials})"
    return finding, held


def _ratio_finding(
    md: ModelDay,
    signal: str,
    label: str,
    today_value: float | None,
    base_value: float | None,
    limit: float,
    fmt: str,
    n_base: int,
    signals: SignalsConfig,
) -> Finding:
    if today_value is not None and n_base < signals.min_baseline_days:
        need = signals.min_baseline_days
        return Finding(
            md.model.id,
            ALL,
            signal,
            "held",
            f"{md.model.id} {label}: not judged yet: {n_base} of {need} baseline days",
            warming=(n_base, need),
        )
    if today_value is None or base_value is None or base_value <= 0:
        return Finding(md.model.id, ALL, signal, "held", f"{md.model.id} {label}: not judged today")
    change = today_value / base_value - 1
    firing = change > limit
    today_text, base_text = fmt.format(today_value), fmt.format(base_value)
    return Finding(
        md.model.id,
        ALL,
        signal,
        "firing" if firing else "ok",
        f"{md.model.id} {label}: {today_text} today vs {base_text} baseline ({change:+.0%})",
        today=today_text,
        baseline=f"{base_text} over {n_base} days",
        detail=f"limit +{limit:.0%}",
    )


def comparable_canaries(md: ModelDay, signals: SignalsConfig) -> list[str]:
    """The canaries (current content) with scored samples both today and on some baseline day:
    the one set a model-level usage figure is computed over, today and in the baseline alike."""
    start = md.day - timedelta(days=signals.baseline_days)
    keep = []
    for canary_id, series in sorted(md.per_canary.items()):
        today = series.get(md.day)
        if today and today.scored and any(start <= d < md.day and c.scored for d, c in series.items()):
            keep.append(canary_id)
    return keep


def _comparable_overall(md: ModelDay, signals: SignalsConfig) -> dict[date, DayCounts]:
    days: dict[date, DayCounts] = {}
    for canary_id in comparable_canaries(md, signals):
        for d, counts in md.per_canary[canary_id].items():
            days[d] = days[d] + counts if d in days else counts
    return days


def tokens(md: ModelDay, signals: SignalsConfig) -> Finding:
    series = _comparable_overall(md, signals)
    today = series.get(md.day)
    base = _baseline_days(series, md.day, signals)
    t = today.output_tokens / today.scored if today and today.scored else None
    b = sum(c.output_tokens for c in base) / sum(c.scored for c in base) if base else None
    if t is None and (overall := md.overall.get(md.day)) and overall.scored:
        t = overall.output_tokens / overall.scored  # nothing comparable: say how far the baseline is
    return _ratio_finding(
        md, "tokens", "output tokens per task", t, b, signals.tokens_increase, "{:.0f}", len(base), signals
    )


def _p95(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * 95 // 100) - 1)]


def latency(md: ModelDay, signals: SignalsConfig) -> Finding:
    keep = comparable_canaries(md, signals)
    per_day: dict[date, list[float]] = {}
    for canary_id in keep:
        for d, values in md.latencies.get(canary_id, {}).items():
            per_day.setdefault(d, []).extend(values)
    t = _p95(per_day.get(md.day, ()))
    if t is None:
        t = _p95([v for days in md.latencies.values() for v in days.get(md.day, ())])
    start = md.day - timedelta(days=signals.baseline_days)
    daily = sorted(p for d, v in per_day.items() if start <= d < md.day and (p := _p95(v)) is not None)
    b = daily[len(daily) // 2] if daily else None
    found = _ratio_finding(
        md, "latency", "p95 latency", t, b, signals.latency_p95_increase, "{:.2f} s", len(daily), signals
    )
    if (
        found.status == "firing"
        and t is not None
        and b is not None
        and t - b < signals.latency_p95_min_delta_s
    ):
        # Doubling 40 ms is noise to a user; a p95 must also be slower by a noticeable amount.
        return Finding(
            found.model_id,
            found.scope,
            found.signal,
            "ok",
            found.summary,
            found.today,
            found.baseline,
            f"below the {signals.latency_p95_min_delta_s:g} s minimum change",
        )
    return found


def cost(md: ModelDay, signals: SignalsConfig) -> Finding | None:
    if md.model.price is None:
        return None
    series = _comparable_overall(md, signals)
    today = series.get(md.day)
    base = [c for c in _baseline_days(series, md.day, signals) if c.passes]
    t = today.cost_usd / today.passes if today and today.passes else None
    b = sum(c.cost_usd for c in base) / sum(c.passes for c in base) if base else None
    return _ratio_finding(
        md,
        "cost",
        "cost per correct answer",
        t,
        b,
        signals.cost_per_correct_increase,
        "${:.5f}",
        len(base),
        signals,
    )


def served(md: ModelDay) -> Finding:
    today = md.served.get(md.day)
    before = [d for d in sorted(md.served) if d < md.day]
    if not today or not before:
        return Finding(
            md.model.id,
            ALL,
            "served_model",
            "held",
            f"{md.model.id}: nothing to compare the served model with",
        )
    previous = md.served[before[-1]]
    new = today - previous
    names = sorted({s or "?" for s, _ in today})
    if not new:
        return Finding(md.model.id, ALL, "served_model", "ok", f"{md.model.id} served by {', '.join(names)}")
    was = ", ".join(sorted(f"{s or '?'}" + (f" [{f}]" if f else "") for s, f in previous))
    now = ", ".join(sorted(f"{s or '?'}" + (f" [{f}]" if f else "") for s, f in new))
    return Finding(
        md.model.id,
        ALL,
        "served_model",
        "firing",
        f"{md.model.id} is answered by a different model or fingerprint: {now} (was {was} on {before[-1]})",
        today=now,
        baseline=was,
        detail=f"requested `{md.model.model}`; compare answers before trusting the series",
    )


def retirement(model: ModelConfig, day: date, signals: SignalsConfig) -> Finding:
    if model.retires is None:
        return Finding(model.id, ALL, "retirement", "ok", f"{model.id}: no retirement date")
    left = (model.retires - day).days
    if left < 0:
        text = f"{model.id} was retired on {model.retires} ({-left} days ago)"
    elif left <= signals.retires_within_days:
        text = f"{model.id} retires on {model.retires} (in {left} days)"
    else:
        return Finding(model.id, ALL, "retirement", "ok", f"{model.id} retires on {model.retires}")
    return Finding(
        model.id,
        ALL,
        "retirement",
        "firing",
        text,
        today=str(model.retires),
        detail="plan the migration: compare the successor in the report",
    )


def stale(last_run: datetime | None, now: datetime, signals: SignalsConfig) -> Finding:
    if last_run is None:
        return Finding(ALL, ALL, "stale", "held", "no completed run yet")
    # A backfilled or --as-of run can finish "after" the end of the day being checked: never "-0.0 h ago".
    age_h = max(0.0, (now - last_run).total_seconds() / 3600)
    if age_h <= signals.max_age_hours:
        return Finding(ALL, ALL, "stale", "ok", f"last completed run {age_h:.1f} h ago")
    return Finding(
        ALL,
        ALL,
        "stale",
        "firing",
        f"no completed canary run for {age_h:.1f} h (limit {signals.max_age_hours:g} h): the canary itself is down",
        today=f"{age_h:.1f} h",
        baseline=f"{signals.max_age_hours:g} h",
        detail=f"last completed run at {last_run:%Y-%m-%d %H:%M} UTC",
    )


def model_findings(
    md: ModelDay, detect: DetectConfig, signals: SignalsConfig, history_days: int
) -> list[Finding]:
    avail, held = availability(md, signals, detect)
    out = [avail, *quality(md, detect, held_reason=held, history_days=history_days)]
    usage = [tokens(md, signals), latency(md, signals)]
    if (c := cost(md, signals)) is not None:
        usage.append(c)
    if held:  # a handful of answers during an outage says little about tokens, latency or cost
        usage = [Finding(f.model_id, f.scope, f.signal, "held", f"{md.model.id}: {held}") for f in usage]
    out += usage
    if signals.served_model_change:
        out.append(served(md))
    out.append(retirement(md.model, md.day, signals))
    return out
