"""What a daemon opens for its pipeline, handed to the pipeline's ``open_stages`` as one
frozen bundle: a new shared resource is one field here, not a parameter in every pipeline."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TypeVar

from orchestrator.config import AppConfig
from orchestrator.db import Store
from orchestrator.flow import Health
from orchestrator.kafka import EventProducer
from orchestrator.metrics import Metrics
from orchestrator.serving import MediaFetcher, TorchServeClient

T = TypeVar("T")


@dataclass(frozen=True)
class Resources:
    """The daemon's config and what it has opened: the database, the producer, the metrics,
    and a health reporter per dependency (``health("torchserve")``) that pauses intake
    while that dependency is down. A pipeline opens its own clients with :meth:`enter`:
    they close with the daemon, in reverse order."""

    config: AppConfig
    stack: contextlib.AsyncExitStack
    store: Store
    producer: EventProducer
    metrics: Metrics
    health: Callable[[str], Health]

    async def enter(self, context: AbstractAsyncContextManager[T]) -> T:
        """Open ``context`` until the daemon stops."""
        return await self.stack.enter_async_context(context)

    async def model_clients(self, pipeline: str) -> tuple[TorchServeClient, MediaFetcher]:
        """The live TorchServe client (its outages pause intake) and the media fetcher,
        their retries counted as ``pipeline``'s."""
        retries = self.metrics.retries.labels(pipeline)
        client = await self.enter(TorchServeClient(
            self.config.torchserve, on_retry=lambda error: retries.inc(),
            health=self.health("torchserve"), inference=self.metrics.inference))
        fetcher = await self.enter(
            MediaFetcher(self.config.media, on_retry=lambda error: retries.inc()))
        return client, fetcher
