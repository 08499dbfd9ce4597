"""Scorers: built-ins, a project's scorers/ folder, and plugins (entry-point group `canary.scorers`)."""

from canary.scoring.base import NoArgs, Scorer, ScoreInput, ScorerSpecError, Verdict

__all__ = ["NoArgs", "ScoreInput", "Scorer", "ScorerSpecError", "Verdict"]
