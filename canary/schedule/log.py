"""One JSON object per line on stdout: what a daemon under systemd or docker should print, so
journald, Loki or `jq` can filter on `event` without parsing prose."""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

# Re-entrant: the daemon's SIGTERM handler logs from the main thread, which may be inside log()
# when the signal lands (a plain Lock deadlocked there: the handler waited on its own thread).
_lock = threading.RLock()


def log(event: str, level: str = "info", *, stream: TextIO | None = None, **fields: Any) -> None:
    """Write {"ts", "level", "event", **fields}. Callers pass ids, counts and messages only,
    never settings objects, so a secret cannot ride along."""
    record = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "event": event,
        **fields,
    }
    line = json.dumps(record, default=str, ensure_ascii=False)
    with _lock:
        out = stream or sys.stdout
        out.write(line + "\n")
        out.flush()


class JsonLogHandler(logging.Handler):
    """Routes APScheduler's own warnings (a missed run, a skipped overlapping run) into the
    same JSON stream instead of a second, differently formatted one on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            log(
                "scheduler_" + record.levelname.lower(),
                record.levelname.lower(),
                logger=record.name,
                message=record.getMessage(),
            )
        except Exception:  # logging must never take the daemon down
            self.handleError(record)
