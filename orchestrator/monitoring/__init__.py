"""How the served models are doing: score drift against a reference, quality from
moderators' decisions, and the statistics both decide with."""

from orchestrator.monitoring.audit import (
    AuditBook,
    AuditSampler,
    Estimate,
    Reviewable,
    ReviewSampleSink,
    Stratum,
    estimate,
)
from orchestrator.monitoring.drift import ScoreDrift, psi
from orchestrator.monitoring.quality import LabelledScore, QualityWindow
from orchestrator.monitoring.scored_clips import DecidedClip, ScoredClip, ScoredClips
from orchestrator.monitoring.statistics import (
    ks_against,
    ks_two_sample,
    quantile_bounds,
    share_of,
    wilson,
    z_of,
)

__all__ = [
    "AuditBook", "AuditSampler", "DecidedClip", "Estimate", "LabelledScore", "QualityWindow",
    "ReviewSampleSink", "Reviewable", "ScoreDrift", "ScoredClip", "ScoredClips", "Stratum",
    "estimate", "ks_against", "ks_two_sample", "psi", "quantile_bounds", "share_of", "wilson",
    "z_of",
]
