"""A finding: what one signal says about one (model, scope) on one day."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["firing", "ok", "held"]
ALL = "*"  # scope of a signal over all of a model's canaries (or, for `stale`, all models)


@dataclass(frozen=True)
class Finding:
    model_id: str
    scope: str
    signal: str
    status: Status
    summary: str
    today: str | None = None
    baseline: str | None = None
    detail: str = ""
    # "held" because the series has no baseline yet: (baseline days with data, days needed)
    warming: tuple[int, int] | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model_id, self.scope, self.signal)
