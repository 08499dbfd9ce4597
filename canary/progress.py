"""Progress while a run is going: a rich bar on a terminal, one plain line per sample otherwise
(so cron mail and CI logs stay readable)."""

from __future__ import annotations

import sys
from typing import Protocol, TextIO

from canary.records import SampleResult
from canary.textsafe import visible


class Progress(Protocol):
    def advance(self, sample: SampleResult) -> None: ...
    def close(self) -> None: ...


class LineProgress:
    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr

    def advance(self, sample: SampleResult) -> None:
        self.done += 1
        # the reason may quote the model: one line, bidi and control characters as markers
        reason = " ".join(visible(sample.reason[:100]).split()) if sample.outcome != "pass" else ""
        detail = f" ({reason})" if reason else ""
        self.stream.write(
            f"[{self.done}/{self.total}] {sample.model_id} {sample.canary_id}#{sample.sample_index} "
            f"{sample.outcome} {sample.latency_s:.2f}s{detail}\n"
        )

    def close(self) -> None:
        self.stream.flush()


class BarProgress:
    def __init__(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(
            TextColumn("[bold]canary run"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[tally]}"),
            TimeElapsedColumn(),
            transient=False,
        )
        self.tally: dict[str, int] = {}
        self.task = self.bar.add_task("run", total=total, tally="")
        self.bar.start()

    def advance(self, sample: SampleResult) -> None:
        self.tally[sample.outcome] = self.tally.get(sample.outcome, 0) + 1
        text = " ".join(f"{k}={v}" for k, v in sorted(self.tally.items()))
        self.bar.update(self.task, advance=1, tally=text)

    def close(self) -> None:
        self.bar.stop()


def make_progress(total: int, *, quiet: bool = False) -> Progress:
    if quiet:
        return _Silent()
    if sys.stderr.isatty():
        return BarProgress(total)
    return LineProgress(total)


class _Silent:
    def advance(self, sample: SampleResult) -> None:
        pass

    def close(self) -> None:
        pass
