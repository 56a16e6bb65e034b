"""Where results go: Kafka topics (verdicts, dead letters) through one async producer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from orchestrator.errors import VigilError

POLL_INTERVAL_S = 0.02


class DeliveryError(RuntimeError):
    """The broker did not acknowledge a produced message."""


class KafkaSink:
    """confluent-kafka Producer with awaitable deliveries.

    A background task serves delivery callbacks; each ``produce`` awaits its own ack, so a
    caller knows its message is durable before it marks the input finished.
    """

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    async def __aenter__(self) -> KafkaSink:
        self._loop = asyncio.get_running_loop()
        self._producer = Producer(self.settings)
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
        """Produce one message and wait for the broker's ack; raises :class:`DeliveryError`."""
        future = self._loop.create_future()

        def delivered(error: KafkaError | None, message: Message) -> None:
            outcome = DeliveryError(str(error)) if error is not None else None
            self._loop.call_soon_threadsafe(_settle, future, outcome)

        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers,
                                       on_delivery=delivered)
                break
            except BufferError:
                # The local queue is full: let deliveries drain, then try again.
                await asyncio.sleep(POLL_INTERVAL_S)
            except KafkaException as exc:
                raise DeliveryError(str(exc)) from exc
        await future


def _settle(future: asyncio.Future, error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


@dataclass(frozen=True)
class SourceRecord:
    """Where a message came from, as dead letters report it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class DeadLetterSink:
    """Sends a failed message, unchanged, to ``<input topic>.dlq`` with the reason in headers."""

    def __init__(self, producer: KafkaSink, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def send(self, record: SourceRecord, error: BaseException, attempts: int = 1) -> str:
        """Produce the dead letter; returns the reason it is filed under."""
        reason = error.reason if isinstance(error, VigilError) else "internal_error"
        headers = [
            ("vigil-error-class", type(error).__name__.encode()),
            ("vigil-error-message", str(error)[:1000].encode("utf-8", "replace")),
            ("vigil-error-reason", reason.encode()),
            ("vigil-original-topic", record.topic.encode()),
            ("vigil-original-partition", str(record.partition).encode()),
            ("vigil-original-offset", str(record.offset).encode()),
            ("vigil-attempts", str(attempts).encode()),
        ]
        await self.producer.produce(self.topic, record.value or b"", record.key, headers)
        return reason


def encode_event(event: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as every Vigil topic carries."""
    return orjson.dumps(event)
