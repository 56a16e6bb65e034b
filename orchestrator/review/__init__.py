"""The moderators' review page (``vigil review``): queues of what Vigil flagged, an item page
made for fast decisions from the keyboard, and the decisions sent to ``review.decisions``."""

from orchestrator.review.auth import Authenticator
from orchestrator.review.claims import Claims
from orchestrator.review.decisions import Decision, PendingDecisions
from orchestrator.review.items import QUEUES, Item, QueueEntry, ReviewItems

__all__ = ["Authenticator", "Claims", "Decision", "Item", "PendingDecisions", "QUEUES",
           "QueueEntry", "ReviewItems"]
