"""Intake flow control: wait for room while full, pause only when it stays full or a
dependency is down, resume once drained and healthy."""

import asyncio

from orchestrator.flow import Backpressure, OffsetTracker
from orchestrator.flow import backpressure as module
from orchestrator.metrics import Metrics
from tests.orchestrator.fakes import RecordingSource

PARTITION = ("clips", 0)
POLL = 64


def make(source, tracker, metrics=None) -> Backpressure:
    return Backpressure("audio", source, tracker, 256, metrics or Metrics(), poll_size=POLL)


def in_flight(count: int) -> OffsetTracker:
    tracker = OffsetTracker()
    tracker.assign([PARTITION])
    for offset in range(count):
        tracker.track(PARTITION, offset)
    return tracker


def finish(tracker: OffsetTracker, offsets: range) -> None:
    for offset in offsets:
        tracker.finish(PARTITION, offset)


async def test_a_full_window_that_drains_in_time_waits_without_pausing():
    tracker, source = in_flight(256), RecordingSource()
    backpressure = make(source, tracker)

    async def drain_soon() -> None:
        await asyncio.sleep(0.05)
        finish(tracker, range(80))

    draining = asyncio.create_task(drain_soon())
    await backpressure.update()
    await draining
    assert tracker.in_flight == 176  # update returned only once a poll of 64 fits
    assert source.calls == []


async def test_a_window_that_stays_full_pauses_then_resumes_once_drained(monkeypatch):
    monkeypatch.setattr(module, "FULL_GRACE_S", 0.05)
    tracker, source = in_flight(256), RecordingSource()
    metrics = Metrics()
    backpressure = make(source, tracker, metrics)
    await backpressure.update()
    assert source.calls == [True]
    assert metrics.paused_partitions.labels("audio")._value.get() == 3
    finish(tracker, range(200))
    await backpressure.update()
    assert source.calls == [True, False]


async def test_a_dependency_in_trouble_pauses_intake_at_once_until_every_one_recovers():
    tracker, source = in_flight(10), RecordingSource()
    backpressure = make(source, tracker)
    torchserve, store = backpressure.reporter("torchserve"), backpressure.reporter("store")
    torchserve(False)
    store(False)
    await asyncio.wait_for(backpressure.update(), timeout=module.FULL_GRACE_S / 2)
    assert source.calls == [True]
    torchserve(True)
    await backpressure.update()
    assert source.calls == [True, True]  # the store is still down
    store(True)
    await backpressure.update()
    assert source.calls == [True, True, False] and backpressure.unhealthy == frozenset()
