"""How numbers read in the report: a rate near 100 % must not print as 100 %, "—" for no data."""

from __future__ import annotations

from datetime import date, datetime

from canary.detect.text import pct as exact_pct

NONE = "—"


def pct(value: float | None) -> str:
    """96.7%, 99.97%, 100%: a near-perfect rate keeps the digits that show it is not perfect."""
    return NONE if value is None else exact_pct(value)


def pct0(value: float | None) -> str:
    """Whole percent, for axis ticks and band edges."""
    return NONE if value is None else f"{value * 100:.0f}%"


def tokens(value: float | None) -> str:
    if value is None:
        return NONE
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:.1f}"


def seconds(value: float | None) -> str:
    if value is None:
        return NONE
    if value >= 10:
        return f"{value:.1f} s"
    return f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.0f} ms"


def usd(value: float | None) -> str:
    if value is None:
        return NONE
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.4f}" if value >= 0.001 else f"${value:.6f}"


def day(value: date | None) -> str:
    return NONE if value is None else value.isoformat()


def when(value: datetime | None) -> str:
    return NONE if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


def short_hash(value: str | None) -> str:
    return NONE if not value else value[:8]


FILTERS = {
    "pct": pct,
    "pct0": pct0,
    "tokens": tokens,
    "seconds": seconds,
    "usd": usd,
    "day": day,
    "when": when,
    "short_hash": short_hash,
}
