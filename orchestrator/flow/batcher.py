"""Fan-in: group items into batches that close at ``max_size`` items or after ``max_wait_s``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from orchestrator.config import BatchConfig

T = TypeVar("T")
_CLOSED = object()


@dataclass(frozen=True)
class Batch(Generic[T]):
    items: list[T]
    waited_s: float  # from the first item's arrival to the batch closing


class MicroBatcher(Generic[T]):
    """A bounded queue read as batches. ``put`` blocks while ``capacity`` items wait."""

    def __init__(self, config: BatchConfig, capacity: int = 256) -> None:
        self.config = config
        self._queue: asyncio.Queue = asyncio.Queue(maxsize=capacity)
        self._closed = False

    async def put(self, item: T) -> None:
        """Queue one item; blocks while the queue is full. Raises RuntimeError once closed."""
        if self._closed:
            raise RuntimeError("batcher is closed")
        await self._queue.put(item)

    async def close(self) -> None:
        """Flush: the batches already queued are still yielded, then iteration ends.

        Blocks while the queue is full, until the reader of :meth:`batches` makes room.
        """
        if not self._closed:
            self._closed = True
            await self._queue.put(_CLOSED)

    async def batches(self) -> AsyncIterator[Batch[T]]:
        """Yield batches until closed and drained."""
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            if first is _CLOSED:
                return
            started = loop.time()
            deadline = started + self.config.max_wait_s
            items, closing = [first], False
            while len(items) < self.config.max_size:
                remaining = deadline - loop.time()
                if remaining <= 0 and self._queue.empty():
                    break
                try:
                    item = self._queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(
                        self._queue.get(), remaining)
                except (asyncio.TimeoutError, asyncio.QueueEmpty):
                    break
                if item is _CLOSED:
                    closing = True
                    break
                items.append(item)
            yield Batch(items=items, waited_s=loop.time() - started)
            if closing:
                return
