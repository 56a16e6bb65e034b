"""How the served models are doing: score drift against a reference, and quality from
moderators' decisions."""

from orchestrator.monitoring.drift import ScoreDrift, psi
from orchestrator.monitoring.quality import LabelledScore, QualityWindow

__all__ = ["LabelledScore", "QualityWindow", "ScoreDrift", "psi"]
