"""One retry policy for every call that crosses to another service: TorchServe, media hosts,
the database and the broker.

Only :class:`~orchestrator.errors.TransientError` is retried, so a programming error or a
refusal fails at once. Backoff doubles up to a cap, with jitter so many clients do not
retry in step, and the whole call stays within a time budget measured on the event loop's
clock: an outage is waited out for that long, then the last error is raised with the
number of attempts on it (``error.attempts``). An error class may cap its attempts
(``max_attempts``) and may say it is no outage (``outage``), in which case intake does not
pause for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from orchestrator.config import RetryConfig
from orchestrator.errors import TransientError

T = TypeVar("T")
Health = Callable[[bool], None]


class RetryPolicy:
    """Calls an async operation until it succeeds, fails for good, or the budget is spent."""

    def __init__(self, config: RetryConfig, *,
                 on_retry: Callable[[BaseException], None] | None = None,
                 health: Health | None = None) -> None:
        self.config = config
        self._on_retry = on_retry or (lambda error: None)
        self._health = health or (lambda healthy: None)

    async def call(self, operation: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await operation(*args)``, retrying transient errors.

        Raises the operation's error: at once when it is not transient, else once the next
        wait would pass the budget or its class's ``max_attempts`` is reached. ``health``
        hears False after each failure that is an outage and True after a success
        (backpressure pauses intake meanwhile).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.budget_s
        delay = self.config.backoff_s
        attempt = 1
        while True:
            try:
                result = await operation(*args)
            except TransientError as error:
                if error.outage:
                    self._health(False)
                pause = delay * random.uniform(0.5, 1.0)
                capped = any(limit is not None and attempt >= limit
                             for limit in (error.max_attempts, self.config.max_attempts))
                if capped or loop.time() + pause > deadline:
                    error.attempts = attempt
                    raise
                self._on_retry(error)
                await asyncio.sleep(pause)
                delay = min(delay * 2, self.config.backoff_max_s)
                attempt += 1
            except Exception as error:
                with contextlib.suppress(AttributeError):  # an exception class with __slots__
                    error.attempts = attempt
                raise
            else:
                self._health(True)
                return result
