"""How the served models are doing: score drift against a reference, and quality from
moderators' decisions."""

from orchestrator.monitoring.drift import ScoreDrift, psi
from orchestrator.monitoring.quality import LabelledScore, QualityWindow
from orchestrator.monitoring.scored_clips import DecidedClip, ScoredClip, ScoredClips

__all__ = ["DecidedClip", "LabelledScore", "QualityWindow", "ScoreDrift", "ScoredClip",
           "ScoredClips", "psi"]
