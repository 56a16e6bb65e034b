"""Acknowledging messages: a message is finished when its result is durable or its dead
letter is acknowledged, and only then may its offset be committed (at least once).

The :class:`~orchestrator.flow.offsets.OffsetTracker` turns finished offsets into committable
ones per partition (the smallest unfinished offset); the source stores those for librdkafka
to commit. A message of a partition revoked meanwhile is ignored: it is not ours to commit.
"""

from __future__ import annotations

from orchestrator.flow.offsets import OffsetTracker
from orchestrator.messages import Envelope


class Acknowledger:
    """The flow's one way to finish a message."""

    def __init__(self, tracker: OffsetTracker) -> None:
        self.tracker = tracker

    def ack(self, envelope: Envelope) -> None:
        """The message is finished: its offset may be committed once all below it are."""
        self.tracker.finish(envelope.position, envelope.offset)
