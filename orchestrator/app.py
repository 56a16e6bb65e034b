"""Wiring and lifecycle of the daemon. Holds no pipeline logic of its own.

Shutdown follows the data: stop consuming, flush the batcher, wait for in-flight requests and
side effects (up to the drain timeout, then cancel), close the sinks, store and commit the
offsets, close the consumer. SIGTERM and SIGINT set the stop event.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal

from orchestrator.background import BackgroundTasks
from orchestrator.batcher import MicroBatcher
from orchestrator.config import AppConfig
from orchestrator.metrics import Metrics
from orchestrator.offsets import OffsetTracker
from orchestrator.pipelines.base import Pipeline, Runtime
from orchestrator.sinks import DeadLetterSink, KafkaSink
from orchestrator.source import CONSUME_BATCH, KafkaSource
from orchestrator.stores import open_store

logger = logging.getLogger(__name__)
LAG_INTERVAL_S = 5.0
FULL_GRACE_S = 1.0  # a full window waits this long for room before partitions are paused
ROOM_POLL_S = 0.005


class Backpressure:
    """Bounds in-flight messages: waits for room while full, and pauses intake while it stays
    full or the model server is overloaded; resumes once drained to half."""

    def __init__(self, pipeline: str, source: KafkaSource, tracker: OffsetTracker, limit: int,
                 metrics: Metrics) -> None:
        self.pipeline = pipeline
        self.source = source
        self.tracker = tracker
        self.limit = limit
        self.metrics = metrics
        self.overloaded = False

    def set_overloaded(self, overloaded: bool) -> None:
        self.overloaded = overloaded

    async def update(self) -> None:
        """Call between polls: returns once a poll may follow (room, or partitions paused)."""
        await self._wait_for_room()
        in_flight = self.tracker.in_flight
        self.metrics.in_flight.labels(self.pipeline).set(in_flight)
        if in_flight > self._room_below or self.overloaded:
            paused = await self.source.set_paused(True)
        elif in_flight <= self.limit // 2:
            paused = await self.source.set_paused(False)
        else:
            return
        self.metrics.paused_partitions.labels(self.pipeline).set(paused)

    @property
    def _room_below(self) -> int:
        """The in-flight count at or under which one more poll cannot pass the limit."""
        return max(self.limit - CONSUME_BATCH, self.limit // 2)

    async def _wait_for_room(self) -> None:
        # Pausing purges librdkafka's prefetched messages and resuming fetches them again: a
        # full window under steady load drains within one batch's latency, so wait for that
        # (measured: pausing at every fill cut a trivial model's clips/s by a third).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FULL_GRACE_S
        while (self.tracker.in_flight > self._room_below and not self.overloaded
               and loop.time() < deadline):
            await asyncio.sleep(ROOM_POLL_S)


async def _report_lag(source: KafkaSource) -> None:
    while True:
        await asyncio.sleep(LAG_INTERVAL_S)
        try:
            await source.report_lag()
        except Exception:  # noqa: BLE001 - lag is best-effort telemetry
            logger.debug("lag report failed", exc_info=True)


PIPELINES = {
    "audio": "orchestrator.pipelines.audio:AudioPipeline",
    "vrt": "orchestrator.pipelines.vrt:VrtPipeline",
    "minview": "orchestrator.pipelines.minview:MinviewPipeline",
}


def pipeline_class(name: str) -> type[Pipeline]:
    """The pipeline called ``name``, imported on demand."""
    module_name, class_name = PIPELINES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


async def run_daemon(config: AppConfig, pipeline: str, *, metrics: Metrics | None = None,
                     stop: asyncio.Event | None = None) -> None:
    """Run the daemon for ``pipeline`` until ``stop`` is set (or SIGTERM/SIGINT)."""
    kind = pipeline_class(pipeline)
    metrics = metrics or Metrics()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    metrics.serve(config.runtime.metrics_port, config.runtime.metrics_addr)

    tracker = OffsetTracker()
    side_effects = BackgroundTasks(config.runtime.side_effect_concurrency,
                                   lambda kind, error: metrics.side_effect_errors.labels(kind).inc())
    batcher: MicroBatcher = MicroBatcher(config.batch, capacity=config.runtime.max_in_flight)
    source = KafkaSource(config.kafka.consumer_settings(), config.kafka.input_topic, tracker,
                         on_lag=lambda t, p, lag: metrics.consumer_lag.labels(t, str(p)).set(lag))
    backpressure = Backpressure(pipeline, source, tracker, config.runtime.max_in_flight, metrics)
    metrics.in_flight.labels(pipeline).set(0)
    metrics.paused_partitions.labels(pipeline).set(0)

    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(source)
        producer = await stack.enter_async_context(KafkaSink(config.kafka.producer_settings()))
        store = await stack.enter_async_context(open_store(config.database_url))
        runtime = Runtime(config=config, tracker=tracker, batcher=batcher, producer=producer,
                          dead_letters=DeadLetterSink(producer, config.kafka.dlq_topic),
                          side_effects=side_effects, store=store, metrics=metrics,
                          set_overloaded=backpressure.set_overloaded)
        daemon = await kind.open(runtime, stack)
        processing = asyncio.create_task(daemon.run(), name="processing")
        lag = asyncio.create_task(_report_lag(source), name="lag")
        logger.info("%s: consuming %s as group %s", pipeline, config.kafka.input_topic,
                    config.kafka.group_id)
        async for envelopes in source.messages():
            for envelope in envelopes:
                await daemon.intake(envelope)
            await backpressure.update()
            if stop.is_set():
                source.stop()
        logger.info("stopping: draining batches and side effects")
        lag.cancel()
        await batcher.close()
        drain = config.runtime.drain_timeout_s
        try:
            await asyncio.wait_for(processing, drain)
        except asyncio.TimeoutError:
            logger.warning("batches still running after %.0f s: cancelled", drain)
        cancelled = await side_effects.wait_and_close(drain)
        if cancelled:
            logger.warning("%d side effects cancelled; their messages will be redelivered",
                           cancelled)
        await source.store_ready()
    logger.info("stopped; offsets committed")
