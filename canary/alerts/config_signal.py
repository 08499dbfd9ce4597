"""The `config` signal: a model that canary cannot monitor, and why.

A model whose API key variable is unset is not called; one the service refuses (401/403, an
unknown model name, an exhausted quota) has its other slots skipped. Either way the run goes on
with the other models and records the model's state (canary.store.modelstatus); this turns the
newest state of each model into a finding, so the alert fires, notifies, shows in `check`,
`alerts`, `status` and the report, and resolves when a later run of the model has no trouble.

Pure given the states; the message names a variable or quotes the provider's redacted error,
never a key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from canary.alerts.findings import ALL, Finding
from canary.config.models import ModelConfig
from canary.store.modelstatus import ModelStatusRow

SIGNAL = "config"

_FIX = {
    "setup": "set the variable where canary runs (the cron/systemd/daemon environment); "
    "the next run calls only this model's missing samples",
    "rejected": "check the key, the model name and the account's quota or billing; "
    "the next run retries this model",
    "partial": "the service refused some requests (see `canary results --failures`); "
    "the next run retries them",
}


def config_finding(model: ModelConfig, state: ModelStatusRow | None) -> Finding:
    if state is None:
        return Finding(model.id, ALL, SIGNAL, "held", f"{model.id}: no run has called it yet")
    if state.ok:
        return Finding(
            model.id,
            ALL,
            SIGNAL,
            "ok",
            f"{model.id} can be monitored again: its requests were answered",
            today=f"answered on {state.day}",
        )
    what = "is only partly monitored" if state.state == "partial" else "cannot be monitored"
    skipped = f", {state.skipped} samples skipped" if state.skipped else ""
    return Finding(
        model.id,
        ALL,
        SIGNAL,
        "firing",
        f"{model.id} {what}: {state.reason}",
        today=f"{state.state} on {state.day}{skipped}",
        detail=_FIX.get(state.state, ""),
    )


def config_findings(models: Iterable[ModelConfig], states: Mapping[str, ModelStatusRow]) -> list[Finding]:
    return [config_finding(m, states.get(m.id)) for m in models]
