"""Wiring and lifecycle of the daemon. Holds no pipeline logic of its own.

Shutdown follows the data: stop consuming, flush the batcher, wait for in-flight requests and
side effects (up to the drain timeout, then cancel), close the sinks, store and commit the
offsets, close the consumer. SIGTERM and SIGINT set the stop event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from orchestrator.background import BackgroundTasks
from orchestrator.batcher import MicroBatcher
from orchestrator.config import AppConfig
from orchestrator.media import MediaFetcher
from orchestrator.metrics import Metrics
from orchestrator.offsets import OffsetTracker
from orchestrator.pipelines.audio import PIPELINE, AudioPipeline
from orchestrator.sinks import DeadLetterSink, KafkaSink
from orchestrator.source import KafkaSource
from orchestrator.stores import open_store
from orchestrator.torchserve import TorchServeClient

logger = logging.getLogger(__name__)
LAG_INTERVAL_S = 5.0


class Backpressure:
    """Pauses intake while too much is in flight or the model server is overloaded."""

    def __init__(self, source: KafkaSource, tracker: OffsetTracker, limit: int,
                 metrics: Metrics) -> None:
        self.source = source
        self.tracker = tracker
        self.limit = limit
        self.metrics = metrics
        self.overloaded = False

    def set_overloaded(self, overloaded: bool) -> None:
        self.overloaded = overloaded

    async def update(self) -> None:
        in_flight = self.tracker.in_flight
        self.metrics.in_flight.labels(PIPELINE).set(in_flight)
        if in_flight >= self.limit or self.overloaded:
            paused = await self.source.set_paused(True)
        elif in_flight <= self.limit // 2:
            paused = await self.source.set_paused(False)
        else:
            return
        self.metrics.paused_partitions.labels(PIPELINE).set(paused)


async def _report_lag(source: KafkaSource) -> None:
    while True:
        await asyncio.sleep(LAG_INTERVAL_S)
        try:
            await source.report_lag()
        except Exception:  # noqa: BLE001 - lag is best-effort telemetry
            logger.debug("lag report failed", exc_info=True)


async def run_audio(config: AppConfig, *, metrics: Metrics | None = None,
                    stop: asyncio.Event | None = None) -> None:
    """Run the livestream audio daemon until ``stop`` is set (or SIGTERM/SIGINT)."""
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
    backpressure = Backpressure(source, tracker, config.runtime.max_in_flight, metrics)
    client = TorchServeClient(config.torchserve,
                              on_retry=lambda error: metrics.retries.labels(PIPELINE).inc(),
                              on_overload=backpressure.set_overloaded)

    async with source, KafkaSink(config.kafka.producer_settings()) as producer, \
            open_store(config.database_url) as store, client, \
            MediaFetcher(config.media) as fetcher:
        pipeline = AudioPipeline(
            config=config, tracker=tracker, batcher=batcher, client=client, fetcher=fetcher,
            store=store, producer=producer,
            dead_letters=DeadLetterSink(producer, config.kafka.dlq_topic),
            side_effects=side_effects, metrics=metrics)
        scoring = asyncio.create_task(pipeline.run(), name="scoring")
        lag = asyncio.create_task(_report_lag(source), name="lag")
        logger.info("consuming %s as group %s", config.kafka.input_topic, config.kafka.group_id)
        async for envelopes in source.messages():
            for envelope in envelopes:
                await pipeline.intake(envelope)
            await backpressure.update()
            if stop.is_set():
                source.stop()
        logger.info("stopping: draining batches and side effects")
        lag.cancel()
        await batcher.close()
        drain = config.runtime.drain_timeout_s
        try:
            await asyncio.wait_for(scoring, drain)
        except asyncio.TimeoutError:
            logger.warning("batches still running after %.0f s: cancelled", drain)
        cancelled = await side_effects.wait_and_close(drain)
        if cancelled:
            logger.warning("%d side effects cancelled; their messages will be redelivered",
                           cancelled)
        await source.store_ready()
    logger.info("stopped; offsets committed")
