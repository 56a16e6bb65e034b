"""What every pipeline shares: intake to the batcher, one task per batch, dead letters, retries.

A pipeline subclass says how to parse a message (:meth:`Pipeline.parse`) and what to do with
a batch of parsed items (:meth:`Pipeline.process_batch`). Each consumed message must end in
:meth:`Pipeline.finish` (result written) or :meth:`Pipeline.dead_letter` before its offset
may be stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar, Generic, TypeVar

import orjson

from orchestrator.background import BackgroundTasks
from orchestrator.batcher import MicroBatcher
from orchestrator.config import AppConfig
from orchestrator.errors import InvalidField, InvalidJson, VigilError
from orchestrator.media import MediaFetcher
from orchestrator.metrics import Metrics
from orchestrator.offsets import OffsetTracker
from orchestrator.sinks import DeadLetterSink, KafkaSink, SourceRecord, encode_event
from orchestrator.source import Envelope
from orchestrator.stores import Store, upsert
from orchestrator.torchserve import TorchServeClient

logger = logging.getLogger(__name__)
SIDE_EFFECT_ATTEMPTS = 5
T = TypeVar("T")


@dataclass
class Runtime:
    """The daemon's shared parts, opened by the app before the pipeline starts."""

    config: AppConfig
    tracker: OffsetTracker
    batcher: MicroBatcher
    producer: KafkaSink
    dead_letters: DeadLetterSink
    side_effects: BackgroundTasks
    store: Store
    metrics: Metrics
    set_overloaded: Callable[[bool], None]


def parse_json_object(envelope: Envelope) -> dict[str, Any]:
    """The message value as a JSON object, or :class:`InvalidJson`.

    orjson rather than the standard library: it refuses nesting past 1,024 levels with a
    decode error, where ``json.loads`` raises ``RecursionError``, and it refuses NaN,
    Infinity and lone surrogates, which could not be re-emitted as valid JSON.
    """
    try:
        message = orjson.loads(envelope.value or b"")
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"value is not UTF-8 JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise InvalidJson(f"value is JSON {type(message).__name__}, not an object")
    try:
        # Kept fields are re-emitted: refuse now what the encoder would refuse later
        # (orjson encodes at most 254 levels), rather than fail a whole batch's writes.
        orjson.dumps(message)
    except orjson.JSONEncodeError as exc:
        raise InvalidJson(f"value cannot be re-emitted as JSON: {exc}") from exc
    return message


def parse_time(stamp: Any, field: str, envelope: Envelope) -> float:
    """An ISO 8601 field as epoch seconds; the Kafka timestamp (or now) when absent."""
    if isinstance(stamp, str) and stamp:
        try:
            parsed = datetime.fromisoformat(stamp)
        except ValueError as exc:
            raise InvalidField(f"{field} is not ISO 8601: {stamp[:50]!r}") from exc
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
    if stamp not in (None, ""):
        raise InvalidField(f"{field} must be an ISO 8601 string")
    if envelope.timestamp_ms:
        return envelope.timestamp_ms / 1000
    return time.time()


@contextlib.asynccontextmanager
async def model_client(runtime: Runtime, pipeline: str):
    """A TorchServe client whose retries and overload signals feed this daemon's metrics."""
    client = TorchServeClient(
        runtime.config.torchserve,
        on_retry=lambda error: runtime.metrics.retries.labels(pipeline).inc(),
        on_overload=runtime.set_overloaded)
    async with client:
        yield client


class Pipeline(ABC, Generic[T]):
    """Batches parsed items and processes each batch in its own task."""

    name: ClassVar[str]

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.metrics = runtime.metrics
        self._batches: set[asyncio.Task] = set()
        # Series exist from the start at 0, so dashboards and rate() see them before traffic.
        for family in (self.metrics.messages_consumed, self.metrics.retries,
                       self.metrics.end_to_end):
            family.labels(self.name)

    @classmethod
    @abstractmethod
    async def open(cls, runtime: Runtime, stack: contextlib.AsyncExitStack) -> Pipeline:
        """Open the pipeline's own resources on ``stack`` and return the pipeline."""

    @abstractmethod
    def parse(self, envelope: Envelope) -> T:
        """Validate one message; raise a :class:`BadMessage` naming what is wrong."""

    @abstractmethod
    async def process_batch(self, items: list[T]) -> None:
        """Handle a batch; every item must end in :meth:`finish` or :meth:`dead_letter`."""

    async def intake(self, envelope: Envelope) -> None:
        """Parse one message and queue it for a batch, or dead-letter it."""
        self.metrics.messages_consumed.labels(self.name).inc()
        try:
            item = self.parse(envelope)
        except Exception as error:  # noqa: BLE001 - whatever one message raises is its dead letter
            await self.spawn(self.dead_letter(envelope, error), "dead_letter")
            return
        await self.runtime.batcher.put(item)

    async def run(self) -> None:
        """Process batches until the batcher is closed and drained, then wait for them."""
        async for batch in self.runtime.batcher.batches():
            self.metrics.batch_size.observe(len(batch.items))
            self.metrics.batch_wait.observe(batch.waited_s)
            task = asyncio.create_task(self._guarded(batch.items))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
        await asyncio.gather(*self._batches, return_exceptions=True)

    async def _guarded(self, items: list[T]) -> None:
        try:
            await self.process_batch(items)
        except Exception as error:  # noqa: BLE001 - a bug must dead-letter, not stall offsets
            logger.exception("batch of %d failed", len(items))
            for item in items:
                await self.spawn(self.dead_letter(item.envelope, error), "dead_letter")

    async def score_each(self, items: list[T],
                         score: Callable[[T], Awaitable[dict[str, Any]]]
                         ) -> list[tuple[T, dict[str, Any]]]:
        """Fan out: score every item concurrently; failures go to the dead-letter topic."""
        outcomes = await asyncio.gather(*(score(item) for item in items), return_exceptions=True)
        return await self.settle(items, outcomes)

    async def settle(self, items: list[T], outcomes: list[Any]) -> list[tuple[T, dict[str, Any]]]:
        """Dead-letter the items whose outcome is an exception; the rest with their results."""
        scored = []
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                await self.spawn(self.dead_letter(item.envelope, outcome), "dead_letter")
            else:
                scored.append((item, outcome))
        return scored

    async def write_results(self, scored: list[tuple[T, dict[str, Any]]],
                            rows: dict[str, list[dict[str, Any]]],
                            account: Callable[[T, dict[str, Any]], None], kind: str) -> None:
        """Upsert ``rows`` per table and produce each result; then, and only then, finish.

        Any failure after retries dead-letters the items: a result is never dropped.
        """
        try:
            for table, table_rows in rows.items():
                await self.with_retries(upsert, self.runtime.store, table, table_rows)
            await asyncio.gather(*(
                self.with_retries(self.runtime.producer.produce, self.config.kafka.output_topic,
                                  encode_event(result), item.envelope.key)
                for item, result in scored))
        except Exception as error:  # noqa: BLE001 - any failure dead-letters, never drops
            self.metrics.side_effect_errors.labels(kind).inc()
            for item, _ in scored:
                await self.dead_letter(item.envelope, error)
            return
        for item, result in scored:
            account(item, result)
            self.finish(item.envelope)

    async def predict(self, client: TorchServeClient, model: str, body: bytes) -> dict[str, Any]:
        """One model request, timed into ``vigil_inference_seconds{model}``."""
        with self.metrics.inference.labels(model).time():
            return await client.predict(model, body)

    async def predict_batch(self, client: TorchServeClient, model: str,
                            bodies: list[bytes]) -> list[dict[str, Any] | VigilError]:
        """One multipart model request, timed into ``vigil_inference_seconds{model}``."""
        with self.metrics.inference.labels(model).time():
            return await client.predict_batch(model, bodies)

    async def spawn(self, coroutine: Awaitable[Any], kind: str) -> None:
        """A fire-and-forget side effect, tracked and drained on shutdown."""
        await self.runtime.side_effects.spawn(coroutine, kind)

    def finish(self, envelope: Envelope) -> None:
        """The message's result is durable: its offset may be committed."""
        self.runtime.tracker.finish(envelope.position, envelope.offset)

    async def dead_letter(self, envelope: Envelope, error: BaseException) -> None:
        """Send the message to the dead-letter topic with the reason, then finish it."""
        record = SourceRecord(envelope.topic, envelope.partition, envelope.offset,
                              envelope.key, envelope.value)
        reason = await self.with_retries(self.runtime.dead_letters.send, record, error)
        logger.info("dead letter %s:%d@%d: %s: %s", envelope.topic, envelope.partition,
                    envelope.offset, reason, error)
        self.metrics.dead_letters.labels(self.name, reason).inc()
        self.finish(envelope)

    async def with_retries(self, function: Callable[..., Awaitable[Any]], *args: Any,
                           **kwargs: Any) -> Any:
        """Await ``function(*args, **kwargs)``, retrying with exponential backoff on any error."""
        delay = 0.1
        for attempt in range(1, SIDE_EFFECT_ATTEMPTS + 1):
            try:
                return await function(*args, **kwargs)
            except Exception:
                if attempt == SIDE_EFFECT_ATTEMPTS:
                    raise
                self.metrics.retries.labels(self.name).inc()
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")


class ModelPipeline(Pipeline[T]):
    """A pipeline that fetches media and calls TorchServe."""

    def __init__(self, runtime: Runtime, client: TorchServeClient, fetcher: MediaFetcher) -> None:
        super().__init__(runtime)
        self.client = client
        self.fetcher = fetcher

    @classmethod
    async def open(cls, runtime: Runtime, stack: contextlib.AsyncExitStack) -> ModelPipeline:
        client = await stack.enter_async_context(model_client(runtime, cls.name))
        fetcher = await stack.enter_async_context(MediaFetcher(runtime.config.media))
        return cls(runtime, client, fetcher)
