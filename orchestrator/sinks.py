"""Where results go: database tables and Kafka topics, and the dead-letter topic.

A :class:`Sink` is one method, ``write(results)``, awaited until the results are durable
(rows committed, events acknowledged by the broker). Errors are translated here: an
unreachable broker is :class:`~orchestrator.errors.BrokerUnavailable` (retried), a record
the broker refuses for good is :class:`~orchestrator.errors.DeliveryError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from orchestrator.broker import delivery_error, log_broker_error
from orchestrator.errors import DeliveryError, attempts_of, reason_of
from orchestrator.messages import Envelope
from orchestrator.stores import Store, upsert

R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)
POLL_INTERVAL_S = 0.02
MAX_ERROR_CHARS = 1000


class Sink(Protocol[R_contra]):
    """Writes a batch's results; returns once they are durable."""

    async def write(self, results: Sequence[R_contra]) -> None:
        """Raise when any of ``results`` could not be written."""


class EventProducer:
    """confluent-kafka's Producer with awaitable deliveries.

    A background task serves delivery callbacks; each :meth:`produce` awaits its own ack,
    so a caller knows its record is durable before it acknowledges the input.
    """

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    async def __aenter__(self) -> EventProducer:
        self._loop = asyncio.get_running_loop()
        self._producer = Producer({**self.settings, "error_cb": log_broker_error})
        self._poller = asyncio.create_task(self._poll(), name="kafka-producer-poll")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self._producer.flush, 30)
        self._poller.cancel()
        await asyncio.gather(self._poller, return_exceptions=True)

    async def _poll(self) -> None:
        while True:
            self._producer.poll(0)
            await asyncio.sleep(POLL_INTERVAL_S)

    async def produce(self, topic: str, value: bytes, key: bytes | None = None,
                      headers: list[tuple[str, bytes]] | None = None) -> None:
        """Produce one record and wait for the broker's ack.

        Raises :class:`BrokerUnavailable` or :class:`DeliveryError`.
        """
        future = self._loop.create_future()

        def delivered(error: KafkaError | None, message: Message) -> None:
            self._loop.call_soon_threadsafe(_settle, future, error)

        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers,
                                       on_delivery=delivered)
                break
            except BufferError:
                # The local queue is full: let deliveries drain, then try again.
                await asyncio.sleep(POLL_INTERVAL_S)
            except KafkaException as exc:
                raise delivery_error(exc.args[0]) from exc
        await future


def _settle(future: asyncio.Future, error: KafkaError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(delivery_error(error))


class TableSink(Generic[R]):
    """Upserts one row per result into ``table``, keyed by its primary key."""

    def __init__(self, store: Store, table: str, row: Callable[[R], dict[str, Any]]) -> None:
        self.store = store
        self.table = table
        self.row = row

    async def write(self, results: Sequence[R]) -> None:
        await upsert(self.store, self.table, [self.row(result) for result in results])


class TopicSink(Generic[R]):
    """Produces one event per result to ``topic`` and waits for every ack."""

    def __init__(self, producer: EventProducer, topic: str,
                 event: Callable[[R], dict[str, Any]], key: Callable[[R], bytes | None]) -> None:
        self.producer = producer
        self.topic = topic
        self.event = event
        self.key = key

    async def write(self, results: Sequence[R]) -> None:
        records = [(orjson.dumps(self.event(result)), self.key(result)) for result in results]
        outcomes = await asyncio.gather(
            *(self.producer.produce(self.topic, value, key) for value, key in records),
            return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome


class DeadLetterSink:
    """Sends a failed message, unchanged, to ``<input topic>.dlq`` with why in its headers."""

    def __init__(self, producer: EventProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def send(self, envelope: Envelope, error: BaseException) -> str:
        """Produce the dead letter; returns the reason it is filed under.

        A record the broker refuses as too large goes again without its value (the headers
        say so and give its size), so that refusal cannot stall the partition.
        """
        reason = reason_of(error)
        headers = [
            ("vigil-error-class", type(error).__name__.encode()),
            ("vigil-error-message", str(error)[:MAX_ERROR_CHARS].encode("utf-8", "replace")),
            ("vigil-reason", reason.encode()),
            ("vigil-error-reason", reason.encode()),  # the name before DESIGN.md's
            ("vigil-original-topic", envelope.topic.encode()),
            ("vigil-original-partition", str(envelope.partition).encode()),
            ("vigil-original-offset", str(envelope.offset).encode()),
            ("vigil-attempts", str(attempts_of(error)).encode()),
        ]
        value = envelope.value or b""
        try:
            await self.producer.produce(self.topic, value, envelope.key, headers)
        except DeliveryError:
            omitted = [*headers, ("vigil-value-omitted", f"{len(value)} bytes".encode())]
            await self.producer.produce(self.topic, b"", envelope.key, omitted)
        return reason
