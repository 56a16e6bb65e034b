"""At-least-once offset bookkeeping: which offset of each partition is safe to commit.

An offset is committable only when every message at or below it is finished, so the
committable offset of a partition is its smallest unfinished offset (or one past the highest
seen when nothing is pending). The tracker is shared with librdkafka's rebalance callback,
which runs on the consumer thread, hence the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from orchestrator.messages import Partition


class OffsetTracker:
    """In-flight offsets per owned partition, and the offsets ready to be stored."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[Partition, set[int]] = {}
        self._next: dict[Partition, int] = {}
        self._stored: dict[Partition, int] = {}

    def assign(self, partitions: Iterable[Partition]) -> None:
        """Start owning ``partitions``."""
        with self._lock:
            for partition in partitions:
                self._pending.setdefault(partition, set())

    def track(self, partition: Partition, offset: int) -> bool:
        """Record a consumed message; False when the partition is not owned (drop it)."""
        with self._lock:
            pending = self._pending.get(partition)
            if pending is None:
                return False
            pending.add(offset)
            self._next[partition] = max(self._next.get(partition, 0), offset + 1)
            return True

    def finish(self, partition: Partition, offset: int) -> None:
        """Mark a message finished (verdict or dead letter written). Unknown ones are ignored."""
        with self._lock:
            pending = self._pending.get(partition)
            if pending is not None:
                pending.discard(offset)

    def _committable(self, partition: Partition) -> int | None:
        pending = self._pending[partition]
        if pending:
            return min(pending)
        return self._next.get(partition)

    def ready_to_store(self) -> dict[Partition, int]:
        """Committable offsets that moved since the last call, for owned partitions only."""
        ready = {}
        with self._lock:
            for partition in self._pending:
                offset = self._committable(partition)
                if offset is not None and offset != self._stored.get(partition):
                    ready[partition] = offset
                    self._stored[partition] = offset
        return ready

    def revoke(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        """Stop owning ``partitions``; returns their last committable offsets.

        Work still in flight for them is dropped from the books: its result may still be
        written (upserts make that harmless) but its offset is never stored.
        """
        final = {}
        with self._lock:
            for partition in partitions:
                if partition in self._pending:
                    offset = self._committable(partition)
                    if offset is not None:
                        final[partition] = offset
                    del self._pending[partition]
                self._next.pop(partition, None)
                self._stored.pop(partition, None)
        return final

    @property
    def in_flight(self) -> int:
        """Messages consumed and not finished, over all owned partitions."""
        with self._lock:
            return sum(len(p) for p in self._pending.values())

    def owned(self) -> list[Partition]:
        """The partitions currently assigned to this consumer."""
        with self._lock:
            return list(self._pending)
