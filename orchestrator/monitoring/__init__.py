"""How the served models are doing: score drift against a reference, quality from
moderators' decisions, and the statistics both decide with."""

from orchestrator.monitoring.drift import ScoreDrift, psi
from orchestrator.monitoring.quality import LabelledScore, QualityWindow
from orchestrator.monitoring.scored_clips import DecidedClip, ScoredClip, ScoredClips
from orchestrator.monitoring.statistics import ks_two_sample, wilson, z_of

__all__ = ["DecidedClip", "LabelledScore", "QualityWindow", "ScoreDrift", "ScoredClip",
           "ScoredClips", "ks_two_sample", "psi", "wilson", "z_of"]
