"""The flow's at-least-once logic with in-memory fakes: what is acknowledged, when, and
what becomes a dead letter. (The same flow against real services: tests/integration.)"""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.config import BatchConfig, RetryConfig
from orchestrator.errors import BrokerUnavailable, StoreUnavailable
from orchestrator.flow import (
    Acknowledger,
    BackgroundTasks,
    Flow,
    MicroBatcher,
    OffsetTracker,
    RetryPolicy,
    Stages,
)
from orchestrator.metrics import Metrics
from tests.orchestrator.fakes import (
    FakeScorer,
    RecordingDeadLetters,
    RecordingSink,
    envelope,
    parse,
)

PARTITION = ("in", 0)
FAST_RETRY = RetryConfig(budget_s=2.0, backoff_s=0.01, backoff_max_s=0.05)


class Harness:
    """A flow over fakes, with the offset tracker it acknowledges into."""

    def __init__(self, *, retry: RetryConfig = FAST_RETRY, max_wait_s: float = 0.01) -> None:
        self.tracker = OffsetTracker()
        self.tracker.assign([PARTITION, ("in", 1)])
        self.scorer = FakeScorer()
        self.sink = RecordingSink()
        self.dead_letters = RecordingDeadLetters()
        self.metrics = Metrics()
        self.health: list[bool] = []
        self.side_effects = BackgroundTasks(16, lambda kind, error: None, drain_timeout_s=5)
        self.flow = Flow(
            Stages(name="test", parse=parse, scorer=self.scorer, sinks=[self.sink]),
            batcher=MicroBatcher(BatchConfig(max_size=8, max_wait_s=max_wait_s)),
            acknowledger=Acknowledger(self.tracker), dead_letters=self.dead_letters,
            side_effects=self.side_effects,
            writes=RetryPolicy(retry, health=self.health.append),
            metrics=self.metrics, drain_timeout_s=5)

    async def __aenter__(self) -> Harness:
        await self.side_effects.__aenter__()
        await self.flow.__aenter__()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.flow.__aexit__(*exc_info)
        await self.side_effects.__aexit__(*exc_info)

    async def feed(self, *envelopes) -> None:
        for item in envelopes:
            self.tracker.track(item.position, item.offset)
            await self.flow.intake(item)

    def committable(self, partition=PARTITION) -> int | None:
        return self.tracker.ready_to_store().get(partition)


async def settle(condition, timeout_s: float = 3.0) -> None:
    """Yield to the flow until ``condition()`` holds (a deadline, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("the flow did not get there")
        await asyncio.sleep(0.005)


async def test_an_offset_is_committable_only_once_everything_below_it_is_finished():
    async with Harness() as h:
        await h.feed(type(envelope(0))("in", 0, 0, b"k0:slow", b"v0"))
        await settle(lambda: len(h.scorer.batches) == 1)  # offset 0's batch is held
        await h.feed(*(envelope(i) for i in range(1, 6)))
        await settle(lambda: len(h.sink.written) == 5)
        assert h.tracker.in_flight == 1
        assert h.committable() == 0  # offset 0 unfinished: nothing may be committed
        h.scorer.gate.set()
        await settle(lambda: h.tracker.in_flight == 0)
    assert h.committable() == 6
    assert sorted(h.sink.written) == sorted(f"result-{i}" for i in range(6))


async def test_whatever_parse_raises_becomes_that_messages_dead_letter():
    async with Harness() as h:
        boom = type(envelope(1))("in", 0, 1, b"k1", b"boom")
        await h.feed(envelope(0), boom, envelope(2))
        await settle(lambda: h.tracker.in_flight == 0)
    assert h.dead_letters.sent == [(1, "internal_error")]
    assert sorted(h.sink.written) == ["result-0", "result-2"]
    assert h.committable() == 3


async def test_a_scorer_that_raises_or_miscounts_fails_each_item_of_its_batch():
    for fault in ("raise", "short"):
        async with Harness() as h:
            if fault == "raise":
                h.scorer.raise_on_batch = KeyError("odd model answer")
            else:
                h.scorer.outcomes_short_by = 1
            await h.feed(*(envelope(i) for i in range(3)))
            await settle(lambda: h.tracker.in_flight == 0)
        assert sorted(h.dead_letters.sent) == [(i, "internal_error") for i in range(3)], fault
        assert h.sink.written == [] and h.committable() == 3


async def test_a_result_a_sink_refuses_for_good_fails_alone():
    async with Harness() as h:
        h.sink.refuse = {"result-2"}
        await h.feed(*(envelope(i) for i in range(5)))
        await settle(lambda: h.tracker.in_flight == 0)
    assert h.dead_letters.sent == [(2, "internal_error")]
    assert sorted(h.sink.written) == ["result-0", "result-1", "result-3", "result-4"]


async def test_a_per_item_failure_is_dead_lettered_and_its_batch_mates_written():
    async with Harness() as h:
        failing = type(envelope(1))("in", 0, 1, b"k1:fail", b"v1")
        await h.feed(envelope(0), failing, envelope(2))
        await settle(lambda: h.tracker.in_flight == 0)
    assert h.dead_letters.sent == [(1, "internal_error")]
    assert sorted(h.sink.written) == ["result-0", "result-2"]


async def test_a_store_outage_is_retried_and_reported_unhealthy_not_dead_lettered():
    async with Harness() as h:
        h.sink.errors = [StoreUnavailable("connection refused")] * 3
        await h.feed(*(envelope(i) for i in range(4)))
        await settle(lambda: h.tracker.in_flight == 0)
    assert h.dead_letters.sent == []
    assert sorted(h.sink.written) == [f"result-{i}" for i in range(4)]
    assert h.health[:3] == [False, False, False] and h.health[-1] is True


async def test_an_outage_past_the_budget_dead_letters_with_its_reason():
    async with Harness(retry=RetryConfig(budget_s=0.05, backoff_s=0.02,
                                         backoff_max_s=0.02)) as h:
        h.sink.errors = [StoreUnavailable("down")] * 50
        await h.feed(envelope(0), envelope(1))
        await settle(lambda: h.tracker.in_flight == 0)
    assert sorted(h.dead_letters.sent) == [(0, "store_unavailable"), (1, "store_unavailable")]


async def test_a_dead_letter_that_fails_for_a_while_is_written_then_acknowledged():
    async with Harness() as h:
        h.dead_letters.errors = [BrokerUnavailable("no ack")] * 3
        await h.feed(type(envelope(0))("in", 0, 0, b"k0:fail", b"v0"))
        await settle(lambda: h.tracker.in_flight == 0)
    assert h.dead_letters.sent == [(0, "internal_error")]
    assert h.flow.stopped is None and h.committable() == 1


async def test_a_dead_letter_that_cannot_be_written_stops_the_flow_without_acknowledging():
    async with Harness(retry=RetryConfig(budget_s=0.05, backoff_s=0.02,
                                         backoff_max_s=0.02)) as h:
        h.dead_letters.always_fail = BrokerUnavailable("no ack")
        await h.feed(envelope(0), type(envelope(1))("in", 0, 1, b"k1:fail", b"v1"),
                     envelope(2))
        await settle(lambda: h.flow.stopped is not None and len(h.sink.written) == 2)
    assert "dead-letter topic unwritable" in str(h.flow.stopped)
    assert h.tracker.in_flight == 1  # offset 1 stays unfinished: redelivered after restart
    assert h.committable() == 1


async def test_results_of_a_partition_revoked_mid_batch_are_never_committed():
    async with Harness() as h:
        slow = type(envelope(0))("in", 1, 0, b"k0:slow", b"v0")
        await h.feed(slow, envelope(0, partition=0))
        await settle(lambda: len(h.scorer.batches) >= 1)
        final = h.tracker.revoke([("in", 1)])  # the rebalance callback, mid-batch
        h.scorer.gate.set()
        await settle(lambda: len(h.sink.written) == 2)
    assert final == {("in", 1): 0}  # committed at revoke: nothing of it was finished
    ready = h.tracker.ready_to_store()
    assert ("in", 1) not in ready and h.tracker.owned() == [PARTITION]


async def test_leaving_the_flow_drains_the_batches_and_their_results():
    async with Harness(max_wait_s=0.5) as h:
        await h.feed(*(envelope(i) for i in range(3)))  # a batch still waiting to close
    assert sorted(h.sink.written) == ["result-0", "result-1", "result-2"]
    assert h.tracker.in_flight == 0


@pytest.mark.parametrize("failures", [0, 2])
async def test_every_message_ends_acknowledged_exactly_once(failures):
    async with Harness() as h:
        h.sink.errors = [StoreUnavailable("blip")] * failures
        await h.feed(*(envelope(i) for i in range(40)))
        await settle(lambda: h.tracker.in_flight == 0)
    assert sorted(h.sink.written) == sorted(f"result-{i}" for i in range(40))
    assert h.committable() == 40
