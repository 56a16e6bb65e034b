"""Wiring and lifecycle of a daemon. Holds no pipeline logic of its own.

Every component that owns background work is an async context manager on one exit stack,
entered in the order data flows back out, so any stop, clean or not, unwinds the same way:
stop consuming, flush the batcher and wait for the batches in progress, wait for the side
effects (results, dead letters) up to the drain timeout then cancel them, close the
pipeline's clients, the database and the producer (flushing it), then store the committable
offsets, commit and close the consumer. SIGTERM and SIGINT set the stop event.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Awaitable, Callable

from orchestrator.config import AppConfig
from orchestrator.db import open_store
from orchestrator.flow import (
    Acknowledger,
    BackgroundTasks,
    Backpressure,
    Flow,
    MicroBatcher,
    OffsetTracker,
    Periodic,
    RetryPolicy,
    Stages,
    stop_on_signals,
)
from orchestrator.kafka import CONSUME_BATCH, DeadLetterSink, EventProducer, KafkaSource
from orchestrator.metrics import Metrics
from orchestrator.pipelines.resources import Resources

logger = logging.getLogger(__name__)
LAG_INTERVAL_S = 5.0

PIPELINES = {
    "audio": "orchestrator.pipelines.audio",
    "vrt": "orchestrator.pipelines.vrt",
    "minview": "orchestrator.pipelines.minview",
    "quality": "orchestrator.pipelines.quality",
}


OpenStages = Callable[[Resources], Awaitable[Stages]]


def stages_opener(pipeline: str) -> OpenStages:
    """The ``open_stages`` of the pipeline called ``pipeline``, imported on demand."""
    return importlib.import_module(PIPELINES[pipeline]).open_stages


def _lag_report_failed(error: Exception) -> None:
    logger.debug("lag report failed", exc_info=error)  # lag is best-effort telemetry


async def run_daemon(config: AppConfig, pipeline: str, *, metrics: Metrics | None = None,
                     stop: asyncio.Event | None = None) -> None:
    """Run the daemon for ``pipeline`` until ``stop`` is set (or SIGTERM/SIGINT).

    Raises :class:`~orchestrator.errors.ConfigError` when a start-up check fails, and
    :class:`~orchestrator.flow.spine.FlowStopped` when a dead letter could not be written.
    """
    open_stages = stages_opener(pipeline)
    metrics = metrics or Metrics()
    stop = stop_on_signals(stop)
    metrics.serve(config.runtime.metrics_port, config.runtime.metrics_addr)
    metrics.in_flight.labels(pipeline).set(0)
    metrics.paused_partitions.labels(pipeline).set(0)
    runtime = config.runtime
    tracker = OffsetTracker()

    async with contextlib.AsyncExitStack() as stack:
        source = await stack.enter_async_context(KafkaSource(
            config.kafka.consumer_settings(), config.kafka.input_topic, tracker,
            on_lag=lambda t, p, lag: metrics.consumer_lag.labels(t, str(p)).set(lag)))
        producer = await stack.enter_async_context(
            EventProducer(config.kafka.producer_settings()))
        store = await stack.enter_async_context(open_store(config.database_url))
        backpressure = Backpressure(pipeline, source, tracker, runtime.max_in_flight, metrics,
                                    poll_size=CONSUME_BATCH)
        stages = await open_stages(Resources(config, stack, store, producer, metrics,
                                             backpressure.reporter))
        side_effects = await stack.enter_async_context(BackgroundTasks(
            runtime.side_effect_concurrency,
            lambda kind, error: metrics.side_effect_errors.labels(kind).inc(),
            drain_timeout_s=runtime.drain_timeout_s))
        retries = metrics.retries.labels(pipeline)
        writes = RetryPolicy(runtime.write_retry, on_retry=lambda error: retries.inc(),
                             health=backpressure.reporter("writes"))
        flow = await stack.enter_async_context(Flow(
            stages, batcher=MicroBatcher(config.batch, capacity=runtime.max_in_flight),
            acknowledger=Acknowledger(tracker),
            dead_letters=DeadLetterSink(producer, config.kafka.dlq_topic),
            side_effects=side_effects, writes=writes, metrics=metrics,
            drain_timeout_s=runtime.drain_timeout_s))
        await stack.enter_async_context(Periodic("consumer-lag", LAG_INTERVAL_S,
                                                 source.report_lag, on_error=_lag_report_failed))
        logger.info("%s: consuming %s as group %s", pipeline, config.kafka.input_topic,
                    config.kafka.group_id)
        async for envelopes in source.messages():
            for envelope in envelopes:
                await flow.intake(envelope)
            await backpressure.update()
            if stop.is_set() or flow.stopped:
                source.stop()
        logger.info("stopping: draining batches and side effects")
    if flow.stopped:
        raise flow.stopped
    logger.info("stopped; offsets committed")
