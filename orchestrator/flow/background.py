"""Work in the background: fire-and-forget tasks (tracked, bounded, errors logged and
counted, drained on stop), and periodic calls.

:class:`BackgroundTasks` follows aiojobs' scheduler: ``spawn`` waits for a free slot (so side
effects apply backpressure instead of piling up), ``try_spawn`` drops what finds no slot (work
that must never delay anything, such as shadow requests), every task is kept in a set until
done, and ``wait_and_close`` waits up to a timeout and then cancels the rest; leaving the
context manager does that with the drain timeout, whether the daemon stops cleanly or not.
:class:`Periodic` is the one sleep loop: an action every interval until its context exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

logger = logging.getLogger(__name__)


class BackgroundTasks:
    """At most ``limit`` tasks run at once; none is lost silently."""

    def __init__(self, limit: int, on_error: Callable[[str, BaseException], None] | None = None,
                 *, drain_timeout_s: float = 30.0) -> None:
        self._free = limit
        self._freed = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._on_error = on_error
        self._closed = False
        self.drain_timeout_s = drain_timeout_s

    async def __aenter__(self) -> BackgroundTasks:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        cancelled = await self.wait_and_close(self.drain_timeout_s)
        if cancelled:
            logger.warning("%d background tasks cancelled after %.0f s (a message whose side "
                           "effect was cancelled is not acknowledged: it is redelivered)",
                           cancelled, self.drain_timeout_s)

    def __len__(self) -> int:
        return len(self._tasks)

    async def spawn(self, coroutine: Coroutine[Any, Any, Any], kind: str) -> None:
        """Start ``coroutine`` once a slot is free; raises RuntimeError after close."""
        while self._free == 0 and not self._closed:
            self._freed.clear()
            await self._freed.wait()
        if self._closed:
            coroutine.close()
            raise RuntimeError("background tasks are closed")
        self._start(coroutine, kind)

    def try_spawn(self, coroutine: Coroutine[Any, Any, Any], kind: str) -> bool:
        """Start ``coroutine`` now if a slot is free; False (and it never runs) otherwise."""
        if self._free == 0 or self._closed:
            coroutine.close()
            return False
        self._start(coroutine, kind)
        return True

    def _start(self, coroutine: Coroutine[Any, Any, Any], kind: str) -> None:
        self._free -= 1
        task = asyncio.create_task(coroutine, name=kind)
        self._tasks.add(task)
        task.add_done_callback(partial(self._finished, kind))

    def _finished(self, kind: str, task: asyncio.Task) -> None:
        self._free += 1
        self._freed.set()
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error("background task %s failed", kind, exc_info=error)
            if self._on_error is not None:
                self._on_error(kind, error)

    async def wait_and_close(self, timeout_s: float) -> int:
        """Wait for running tasks up to ``timeout_s``, cancel the rest; returns how many
        were cancelled."""
        self._closed = True
        self._freed.set()  # a spawn waiting for a slot raises instead of waiting forever
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)


class Periodic:
    """Awaits ``action`` every ``interval_s`` (after the first interval) until the context
    exits. A failed call is handed to ``on_error`` (logged by default) and the next goes
    ahead: a periodic job that stops on its first error stops for good."""

    def __init__(self, name: str, interval_s: float, action: Callable[[], Awaitable[Any]], *,
                 on_error: Callable[[Exception], None] | None = None) -> None:
        self.name = name
        self.interval_s = interval_s
        self.action = action
        self.on_error = on_error or self._log

    async def __aenter__(self) -> Periodic:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def _log(self, error: Exception) -> None:
        logger.error("%s failed", self.name, exc_info=error)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.action()
            except Exception as error:  # noqa: BLE001 - the next call may do better
                self.on_error(error)


def stop_on_signals(stop: asyncio.Event | None = None) -> asyncio.Event:
    """``stop``, or a new event, set on SIGTERM or SIGINT: how every daemon learns to drain
    and exit."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop
