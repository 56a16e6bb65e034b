"""Min-view triage: the calibrated policy, users' history (and its HTTP API), what it reads
and writes in the database, and per-key locks."""

from orchestrator.triage.history import HistoryRepository
from orchestrator.triage.locks import KeyedLocks
from orchestrator.triage.policy import TriagePolicy
from orchestrator.triage.records import TriageRecords

__all__ = ["HistoryRepository", "KeyedLocks", "TriagePolicy", "TriageRecords"]
