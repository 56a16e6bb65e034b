"""Where results go on Kafka: event topics and the dead-letter topic.

Each sink keeps the :class:`~orchestrator.flow.seams.Sink` contract, awaited until the
broker acknowledged every event. Errors are translated here: an unreachable broker is
:class:`~orchestrator.errors.BrokerUnavailable` (retried), a record the broker refuses for
good is :class:`~orchestrator.errors.DeliveryError`.

Nothing a message carries may stop its partition, so a record the broker refuses for its
size or content is reduced until it can be written: an event loses what the input brought
(its own fields), a dead letter its value, then its key (kept as its length and hash).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from orchestrator.errors import DeliveryError, attempts_of, reason_of
from orchestrator.escape import escape_controls
from orchestrator.flow import Periodic
from orchestrator.kafka.broker import delivery_error, log_broker_error
from orchestrator.messages import Envelope

R = TypeVar("R")
POLL_INTERVAL_S = 0.02
MAX_ERROR_CHARS = 1000
SHORT_ERROR_CHARS = 200  # in a dead letter reduced to its headers
Headers = list[tuple[str, bytes]]


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
        # Delivery callbacks run inside poll(): the producer's own loop serves them.
        self._poller = Periodic("kafka-producer-poll", POLL_INTERVAL_S, self._serve_callbacks)
        self._poller.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self._producer.flush, 30)
        await self._poller.stop()

    async def _serve_callbacks(self) -> None:
        self._producer.poll(0)

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


class TopicSink(Generic[R]):
    """Produces one event per result to ``topic`` and waits for every ack.

    ``event`` is the whole event; ``summary`` the same without what the input brought,
    sent instead (marked ``"input_omitted": true``) when the broker refuses the whole one
    for its size or content.
    """

    def __init__(self, producer: EventProducer, topic: str, *,
                 event: Callable[[R], dict[str, Any]], summary: Callable[[R], dict[str, Any]],
                 key: Callable[[R], bytes | None]) -> None:
        self.producer = producer
        self.topic = topic
        self.event = event
        self.summary = summary
        self.key = key

    async def write(self, results: Sequence[R]) -> None:
        outcomes = await asyncio.gather(*(self._produce(result) for result in results),
                                        return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _produce(self, result: R) -> None:
        key = self.key(result)
        try:
            await self.producer.produce(self.topic, orjson.dumps(self.event(result)), key)
        except DeliveryError:
            summary = {**self.summary(result), "input_omitted": True}
            await self.producer.produce(self.topic, orjson.dumps(summary), key)


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter's record: the failed message's value and key, and why in headers."""

    value: bytes
    key: bytes | None
    headers: Headers

    @classmethod
    def of(cls, envelope: Envelope, error: BaseException) -> DeadLetter:
        reason = reason_of(error).encode()
        return cls(envelope.value or b"", envelope.key, [
            ("vigil-error-class", type(error).__name__.encode()),
            ("vigil-error-message", _header_text(str(error), MAX_ERROR_CHARS)),
            ("vigil-reason", reason),
            ("vigil-error-reason", reason),  # the name before DESIGN.md's
            ("vigil-original-topic", envelope.topic.encode()),
            ("vigil-original-partition", str(envelope.partition).encode()),
            ("vigil-original-offset", str(envelope.offset).encode()),
            ("vigil-attempts", str(attempts_of(error)).encode()),
        ])

    def without_value(self) -> DeadLetter:
        """The value dropped; a header gives its size."""
        return replace(self, value=b"", headers=[
            *self.headers, ("vigil-value-omitted", f"{len(self.value)} bytes".encode())])

    def without_key(self) -> DeadLetter:
        """The key replaced by its length and SHA-256 in a header; error texts cut short."""
        key = self.key or b""
        digest = hashlib.sha256(key).hexdigest()
        headers = [(name, value[:SHORT_ERROR_CHARS] if name == "vigil-error-message" else value)
                   for name, value in self.headers]
        return replace(self, key=None, headers=[
            *headers, ("vigil-key-omitted", f"{len(key)} bytes sha256:{digest}".encode())])


def _header_text(text: str, limit: int) -> bytes:
    """``text`` as a header value: control characters escaped (a line break must not start
    a forged header where headers are shown as lines), cut to ``limit`` characters."""
    return escape_controls(text)[:limit].encode("utf-8", "replace")


class DeadLetterSink:
    """Sends a failed message, unchanged, to ``<input topic>.dlq`` with why in its headers."""

    def __init__(self, producer: EventProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def send(self, envelope: Envelope, error: BaseException) -> str:
        """Produce the dead letter; returns the reason it is filed under.

        A record the broker refuses for its size or content goes again without its value,
        then without its key as well (the headers say so), so that nothing a message holds
        can make its dead letter unwritable and stall the partition. Raises
        :class:`BrokerUnavailable` when the broker cannot be reached, and
        :class:`DeliveryError` only when even the headers alone are refused.
        """
        letter = DeadLetter.of(envelope, error)
        reduced = letter.without_value()
        for attempt in (letter, reduced, reduced.without_key()):
            try:
                await self.producer.produce(self.topic, attempt.value, attempt.key,
                                            attempt.headers)
                return reason_of(error)
            except DeliveryError as refused:
                last = refused
        raise last
