"""A pipeline's flow: parse → batch → score → sinks → acknowledge.

Each pipeline supplies its :class:`Stages`; :class:`Flow` runs them and draws one boundary
around each message. Whatever parse, scoring or a sink raises for a message becomes that
message's dead letter, with the reason of its error (``internal_error`` for anything that is
not a Vigil error), and its partition moves on:

- parse raises: the message is dead-lettered at once;
- the scorer raises as a whole: every item of its batch fails with that error;
- a sink fails for good on a batch: the results are written one by one, so only the
  results that fail alone are dead-lettered (a transient failure is retried first);
- a dead letter the broker refuses for its size or content is reduced until it can be
  written (see :class:`~orchestrator.kafka.sinks.DeadLetterSink`); one that cannot be written
  because the broker stays unreachable through the retries stops the daemon without
  acknowledging the message, which is then redelivered: nothing is dropped.

A message is acknowledged only once its results are durable in every sink or its dead
letter is acknowledged by the broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from orchestrator.errors import TransientError, reason_of
from orchestrator.flow.acknowledger import Acknowledger
from orchestrator.flow.background import BackgroundTasks
from orchestrator.flow.batcher import MicroBatcher
from orchestrator.flow.outcomes import Failure, one_per_item
from orchestrator.flow.retry import RetryPolicy
from orchestrator.flow.seams import Scorer, Sink
from orchestrator.messages import Envelope
from orchestrator.metrics import Metrics

logger = logging.getLogger(__name__)


class Item(Protocol):
    """What a parse stage returns: a typed message that knows where it came from."""

    envelope: Envelope


T = TypeVar("T", bound=Item)
R = TypeVar("R")


@dataclass(frozen=True, kw_only=True)
class Stages(Generic[T, R]):
    """What a pipeline is: how to parse a message, score a batch, and where results go."""

    name: str
    parse: Callable[[Envelope], T]
    scorer: Scorer[T, R]
    sinks: Sequence[Sink[R]]
    # Metrics for a result once it is written (verdict counts, end-to-end latency).
    account: Callable[[T, R], None] = field(default=lambda item, result: None)


class DeadLetters(Protocol):
    async def send(self, envelope: Envelope, error: BaseException) -> str:
        """Write the dead letter; returns its reason."""


class FlowStopped(RuntimeError):
    """A dead letter could not be written: the daemon stops so the message is redelivered."""


class Flow(Generic[T, R]):
    """Runs :class:`Stages`, one task per batch, results written in tracked side effects.

    An async context manager: leaving it closes the batcher, waits up to the drain timeout
    for the batches in progress, then cancels what is left.
    """

    def __init__(self, stages: Stages[T, R], *, batcher: MicroBatcher, acknowledger: Acknowledger,
                 dead_letters: DeadLetters, side_effects: BackgroundTasks, writes: RetryPolicy,
                 metrics: Metrics, drain_timeout_s: float) -> None:
        self.stages = stages
        self.batcher = batcher
        self.acknowledger = acknowledger
        self.dead_letters = dead_letters
        self.side_effects = side_effects
        self.writes = writes
        self.metrics = metrics
        self.drain_timeout_s = drain_timeout_s
        self.stopped: FlowStopped | None = None
        self._batches: set[asyncio.Task] = set()
        self._dead_lettered = metrics.dead_letters
        # Series exist at 0 before any traffic.
        self._consumed = metrics.messages_consumed.labels(stages.name)
        for family in (metrics.retries, metrics.end_to_end):
            family.labels(stages.name)

    async def __aenter__(self) -> Flow[T, R]:
        self._runner = asyncio.create_task(self._run(), name=f"{self.stages.name}-batches")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.batcher.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._runner), self.drain_timeout_s)
        except asyncio.TimeoutError:
            logger.warning("batches still running after %.0f s: cancelled", self.drain_timeout_s)
            self._runner.cancel()
            for task in list(self._batches):
                task.cancel()
            await asyncio.gather(self._runner, *self._batches, return_exceptions=True)

    async def intake(self, envelope: Envelope) -> None:
        """Parse one message and queue it for a batch, or dead-letter it."""
        self._consumed.inc()
        try:
            item = self.stages.parse(envelope)
        except Exception as error:  # noqa: BLE001 - whatever one message raises is its dead letter
            await self.side_effects.spawn(self._dead_letter(envelope, error), "dead_letter")
            return
        await self.batcher.put(item)

    async def _run(self) -> None:
        async for batch in self.batcher.batches():
            self.metrics.batch_size.observe(len(batch.items))
            self.metrics.batch_wait.observe(batch.waited_s)
            task = asyncio.create_task(self._score(batch.items))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
        await asyncio.gather(*self._batches, return_exceptions=True)

    async def _score(self, items: list[T]) -> None:
        try:
            outcomes = one_per_item(items, await self.stages.scorer.score(items))
        except Exception as error:  # noqa: BLE001 - a failed batch fails each of its items
            logger.exception("%s: scoring a batch of %d failed", self.stages.name, len(items))
            outcomes = [Failure(error)] * len(items)
        await self.side_effects.spawn(self._deliver(items, outcomes), "results")

    async def _deliver(self, items: list[T], outcomes: list[R | Failure]) -> None:
        """Write the results, acknowledge them, and dead-letter the failures."""
        scored = [(item, o) for item, o in zip(items, outcomes) if not isinstance(o, Failure)]
        failed = [(item, o.error) for item, o in zip(items, outcomes) if isinstance(o, Failure)]
        written, refused = await self._write(scored)
        for item, result in written:
            self.acknowledger.ack(item.envelope)
            try:
                self.stages.account(item, result)
            except Exception:  # noqa: BLE001 - metrics must never hold back an offset
                logger.exception("%s: accounting for a result failed", self.stages.name)
                self.metrics.side_effect_errors.labels("account").inc()
        await asyncio.gather(*(self._dead_letter(item.envelope, error)
                               for item, error in failed + refused))

    async def _write(self, scored: list[tuple[T, R]]
                     ) -> tuple[list[tuple[T, R]], list[tuple[T, BaseException]]]:
        """Write every result to every sink: (written, refused with their errors)."""
        if not scored:
            return [], []
        try:
            await self._write_all([result for _, result in scored])
            return scored, []
        except Exception as error:  # noqa: BLE001 - isolated below, then dead-lettered
            self.metrics.side_effect_errors.labels("results").inc()
            if len(scored) == 1 or isinstance(error, TransientError):
                return [], [(item, error) for item, _ in scored]
        # Refused for good: find the results the sinks refuse alone, so one bad result
        # never takes its batch mates to the dead-letter topic with it.
        outcomes = await asyncio.gather(*(self._write_all([result]) for _, result in scored),
                                        return_exceptions=True)
        written = [pair for pair, o in zip(scored, outcomes) if o is None]
        refused = [(item, o) for (item, _), o in zip(scored, outcomes) if o is not None]
        return written, refused

    async def _write_all(self, results: list[R]) -> None:
        for sink in self.stages.sinks:
            await self.writes.call(sink.write, results)

    async def _dead_letter(self, envelope: Envelope, error: BaseException) -> None:
        try:
            reason = await self.writes.call(self.dead_letters.send, envelope, error)
        except Exception as failure:  # noqa: BLE001 - see FlowStopped
            self._stop(envelope, failure)
            return
        logger.info("dead letter %s:%d@%d: %s: %s", envelope.topic, envelope.partition,
                    envelope.offset, reason, error)
        self._dead_lettered.labels(self.stages.name, reason_of(error)).inc()
        self.acknowledger.ack(envelope)

    def _stop(self, envelope: Envelope, failure: BaseException) -> None:
        logger.critical("cannot write the dead letter of %s:%d@%d (%s); stopping so that it "
                        "is redelivered", envelope.topic, envelope.partition, envelope.offset,
                        failure)
        if self.stopped is None:
            self.stopped = FlowStopped(f"dead-letter topic unwritable: {failure}")
