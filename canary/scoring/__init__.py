"""Scorers: built-ins, a project's scorers/ folder, and plugins (entry-point group `canary.scorers`)."""

from canary.scoring.base import NoArgs, ScoreInput, Scorer, ScorerSpecError, Verdict
from canary.scoring.registry import BoundScorer, ScorerRegistry, build_registry, scorer

__all__ = [
    "BoundScorer",
    "NoArgs",
    "ScoreInput",
    "Scorer",
    "ScorerRegistry",
    "ScorerSpecError",
    "Verdict",
    "build_registry",
    "scorer",
]
