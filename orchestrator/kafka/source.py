"""Kafka source: consumes a topic in a group, at least once, with pause/resume backpressure.

confluent-kafka's at-least-once pattern: ``enable.auto.offset.store=false`` and offsets are
stored by hand, only as far as the :class:`OffsetTracker` says every message below is
finished; librdkafka's auto-commit then commits what was stored. All consumer calls run on
one dedicated thread, which is also where librdkafka invokes the rebalance callbacks and
the error callback (a broker that cannot be reached is logged as an error within seconds).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from orchestrator.flow import OffsetTracker
from orchestrator.kafka.broker import log_broker_error
from orchestrator.messages import Envelope, Partition

logger = logging.getLogger(__name__)
CONSUME_BATCH = 64
CONSUME_TIMEOUT_S = 0.1


class KafkaSource:
    """Yields messages of ``topic``; the caller reports each one finished to ``tracker``."""

    def __init__(self, settings: dict, topic: str, tracker: OffsetTracker, *,
                 on_lag: Callable[[str, int, int], None] | None = None) -> None:
        self.settings = settings
        self.topic = topic
        self.tracker = tracker
        self._on_lag = on_lag or (lambda topic, partition, lag: None)
        self._paused = False
        self._stopping = False

    async def __aenter__(self) -> KafkaSource:
        # Subscribing waits for messages(): a group member that does not poll for
        # max.poll.interval.ms is expelled, and start-up may wait minutes for TorchServe.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-consumer")
        self._consumer = Consumer({**self.settings, "error_cb": log_broker_error})
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.commit()
        await self._call(self._consumer.close)
        self._thread.shutdown(wait=True)

    async def _call(self, function: Callable, *args: object, **kwargs: object):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: function(*args, **kwargs))

    # -- rebalance callbacks (consumer thread) ------------------------------------------------
    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.tracker.assign((p.topic, p.partition) for p in partitions)
        logger.info("assigned %s", [(p.topic, p.partition) for p in partitions])
        # librdkafka keeps a partition's pause flag across a revoke and re-assign, so set it
        # explicitly: a partition paused before the rebalance must not stay paused forever.
        if self._paused:
            consumer.pause(partitions)
        else:
            consumer.resume(partitions)

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        final = self.tracker.revoke((p.topic, p.partition) for p in partitions)
        logger.info("revoked %s; committing %s", [(p.topic, p.partition) for p in partitions], final)
        if final:
            self._store_and_commit(consumer, final)

    @staticmethod
    def _store_and_commit(consumer: Consumer, offsets: dict[Partition, int]) -> None:
        partitions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            consumer.store_offsets(offsets=partitions)
            consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                logger.warning("offset commit failed: %s", exc)

    # -- the asyncio side ---------------------------------------------------------------------
    async def messages(self) -> AsyncIterator[list[Envelope]]:
        """Join the group, then poll (also while paused, to keep the group membership)
        until :meth:`stop`."""
        await self._call(self._consumer.subscribe, [self.topic], on_assign=self._assigned,
                         on_revoke=self._revoked, on_lost=self._revoked)
        while not self._stopping:
            polled = await self._call(self._consumer.consume, CONSUME_BATCH, CONSUME_TIMEOUT_S)
            envelopes = []
            for message in polled:
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        logger.warning("consumer error: %s", error)
                    continue
                envelope = Envelope(message.topic(), message.partition(), message.offset(),
                                    message.key(), message.value(), _timestamp(message))
                if self.tracker.track(envelope.position, envelope.offset):
                    envelopes.append(envelope)
            await self.store_committable()
            yield envelopes

    def stop(self) -> None:
        """Make :meth:`messages` end after its current poll."""
        self._stopping = True

    async def store_committable(self) -> None:
        """Store the offsets that became committable; librdkafka commits them."""
        ready = self.tracker.ready_to_store()
        if ready:
            offsets = [TopicPartition(t, p, o) for (t, p), o in ready.items()]
            try:
                await self._call(self._consumer.store_offsets, offsets=offsets)
            except KafkaException as exc:
                logger.warning("storing offsets failed (partition moved?): %s", exc)

    async def commit(self) -> None:
        """Store what is committable and commit synchronously (shutdown)."""
        await self.store_committable()
        try:
            await self._call(self._consumer.commit, asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                logger.warning("final commit failed: %s", exc)

    async def set_paused(self, paused: bool) -> int:
        """Pause or resume every assigned partition; returns how many are paused."""
        if paused == self._paused:
            return len(self.tracker.owned()) if paused else 0
        self._paused = paused
        assignment = await self._call(self._consumer.assignment)
        if assignment:
            await self._call(self._consumer.pause if paused else self._consumer.resume, assignment)
        logger.info("%s %d partitions", "paused" if paused else "resumed", len(assignment))
        return len(assignment) if paused else 0

    async def report_lag(self) -> None:
        """Publish high watermark minus consumed position for each owned partition."""
        assignment = await self._call(self._consumer.assignment)
        positions = await self._call(self._consumer.position, assignment) if assignment else []
        for partition in positions:
            low, high = await self._call(self._consumer.get_watermark_offsets, partition, 2.0)
            position = partition.offset if partition.offset != OFFSET_INVALID else low
            self._on_lag(partition.topic, partition.partition, max(0, high - position))


def _timestamp(message) -> int | None:
    kind, value = message.timestamp()
    return value if kind != 0 and value > 0 else None
