"""Intake flow control: wait for room while full, pause only when it stays full."""

import asyncio

from orchestrator import app
from orchestrator.app import Backpressure
from orchestrator.metrics import Metrics
from orchestrator.offsets import OffsetTracker

PARTITION = ("clips", 0)


class RecordingSource:
    """Stands in for KafkaSource: records pause (True) and resume (False) calls."""

    def __init__(self) -> None:
        self.calls: list[bool] = []

    async def set_paused(self, paused: bool) -> int:
        self.calls.append(paused)
        return 3 if paused else 0


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
    backpressure = Backpressure("audio", source, tracker, 256, Metrics())

    async def drain_soon() -> None:
        await asyncio.sleep(0.05)
        finish(tracker, range(80))

    draining = asyncio.create_task(drain_soon())
    await backpressure.update()
    await draining
    assert tracker.in_flight == 176  # update returned only once a poll of 64 fits
    assert source.calls == []


async def test_a_window_that_stays_full_pauses_then_resumes_once_drained(monkeypatch):
    monkeypatch.setattr(app, "FULL_GRACE_S", 0.05)
    tracker, source = in_flight(256), RecordingSource()
    metrics = Metrics()
    backpressure = Backpressure("audio", source, tracker, 256, metrics)
    await backpressure.update()
    assert source.calls == [True]
    assert metrics.paused_partitions.labels("audio")._value.get() == 3
    finish(tracker, range(200))
    await backpressure.update()
    assert source.calls == [True, False]


async def test_an_overloaded_model_server_pauses_intake_at_once():
    tracker, source = in_flight(10), RecordingSource()
    backpressure = Backpressure("audio", source, tracker, 256, Metrics())
    backpressure.set_overloaded(True)
    await asyncio.wait_for(backpressure.update(), timeout=app.FULL_GRACE_S / 2)
    assert source.calls == [True]
