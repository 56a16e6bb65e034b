"""Fire-and-forget side effects: tracked, bounded, errors logged and counted, drained on stop.

The pattern of aiojobs' scheduler: ``spawn`` waits for a free slot (so side effects apply
backpressure instead of piling up), every task is kept in a set until done, and
``wait_and_close`` waits up to a timeout and then cancels the rest; leaving the context
manager does that with the drain timeout, whether the daemon stops cleanly or not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

logger = logging.getLogger(__name__)


class BackgroundTasks:
    """At most ``limit`` side effects run at once; none is lost silently."""

    def __init__(self, limit: int, on_error: Callable[[str, BaseException], None], *,
                 drain_timeout_s: float = 30.0) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Task] = set()
        self._on_error = on_error
        self._closed = False
        self.drain_timeout_s = drain_timeout_s

    async def __aenter__(self) -> BackgroundTasks:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        cancelled = await self.wait_and_close(self.drain_timeout_s)
        if cancelled:
            logger.warning("%d side effects cancelled after %.0f s; their messages will be "
                           "redelivered", cancelled, self.drain_timeout_s)

    def __len__(self) -> int:
        return len(self._tasks)

    async def spawn(self, coroutine: Coroutine[Any, Any, Any], kind: str) -> None:
        """Start ``coroutine`` once a slot is free; raises RuntimeError after close."""
        if self._closed:
            coroutine.close()
            raise RuntimeError("background tasks are closed")
        await self._slots.acquire()
        task = asyncio.create_task(coroutine, name=kind)
        self._tasks.add(task)
        task.add_done_callback(partial(self._finished, kind))

    def _finished(self, kind: str, task: asyncio.Task) -> None:
        self._slots.release()
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error("side effect %s failed", kind, exc_info=error)
            self._on_error(kind, error)

    async def wait_and_close(self, timeout_s: float) -> int:
        """Wait for running tasks up to ``timeout_s``, cancel the rest; returns how many were cancelled."""
        self._closed = True
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)
