"""Number formatting for the one-line reasons."""

from __future__ import annotations


def pct(x: float) -> str:
    """60%, 96.7%, 99.97%: a near-perfect rate must not print as a perfect one."""
    v = 100 * x
    if abs(v - round(v)) < 1e-9:
        return f"{round(v)}%"
    text = f"{v:.1f}"
    if text in ("100.0", "0.0"):
        text = f"{v:.2f}"
    return text + "%"
