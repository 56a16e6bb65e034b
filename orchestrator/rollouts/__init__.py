"""A candidate model version from shadow through canary steps to live: the rollout table,
the gates, the control each daemon runs, and shadow scoring."""

from orchestrator.rollouts.control import Plan, RolloutControl
from orchestrator.rollouts.gates import Scored
from orchestrator.rollouts.shadow import CandidateRequests, Shadow, ShadowRequest
from orchestrator.rollouts.table import Mode, Rollout, RolloutTable, State

__all__ = [
    "CandidateRequests", "Mode", "Plan", "Rollout", "RolloutControl",
    "RolloutTable", "Scored", "Shadow", "ShadowRequest", "State",
]
