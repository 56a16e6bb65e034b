"""A candidate model version from shadow through canary steps to live: the rollout table,
the gates, the read side each clip is planned from (``view``), the write side that moves
rollouts on (``control``), and a clip's path under a rollout (``clips``)."""

from orchestrator.rollouts.clips import CandidateRequests, ClipVersions, Shadow, ShadowRequest
from orchestrator.rollouts.control import RolloutControl
from orchestrator.rollouts.gates import Scored
from orchestrator.rollouts.table import Mode, Rollout, RolloutTable, State
from orchestrator.rollouts.view import Plan, RolloutView

__all__ = [
    "CandidateRequests", "ClipVersions", "Mode", "Plan", "Rollout", "RolloutControl",
    "RolloutTable", "RolloutView", "Scored", "Shadow", "ShadowRequest", "State",
]
