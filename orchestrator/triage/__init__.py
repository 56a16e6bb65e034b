"""Min-view triage: the calibrated policy, users' history (and its HTTP API), and per-key
locks."""

from orchestrator.triage.history import HistoryRepository
from orchestrator.triage.locks import KeyedLocks
from orchestrator.triage.policy import TriagePolicy

__all__ = ["HistoryRepository", "KeyedLocks", "TriagePolicy"]
