import asyncio

from orchestrator.flow import BackgroundTasks, Periodic


async def test_failures_are_counted_and_concurrency_is_bounded():
    errors, running, peak = [], 0, 0

    async def work(fail):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        if fail:
            raise ValueError("boom")

    tasks = BackgroundTasks(limit=3, on_error=lambda kind, error: errors.append((kind, error)))
    for index in range(10):
        await tasks.spawn(work(index % 4 == 0), "db")
    assert await tasks.wait_and_close(5) == 0
    assert peak <= 3 and len(tasks) == 0
    assert [kind for kind, _ in errors] == ["db"] * 3


async def test_wait_and_close_cancels_what_outlives_the_timeout():
    tasks = BackgroundTasks(limit=5, on_error=lambda kind, error: None)
    await tasks.spawn(asyncio.sleep(30), "slow")
    await tasks.spawn(asyncio.sleep(0), "fast")
    assert await tasks.wait_and_close(0.1) == 1


async def test_try_spawn_drops_what_finds_no_free_slot_and_never_runs_it():
    started = []

    async def work(name):
        started.append(name)
        await asyncio.sleep(0.05)

    tasks = BackgroundTasks(limit=2)
    assert [tasks.try_spawn(work(n), "shadow") for n in "abc"] == [True, True, False]
    await asyncio.sleep(0.1)  # both finish: their slots are free again
    assert tasks.try_spawn(work("d"), "shadow")
    assert await tasks.wait_and_close(1) == 0
    assert started == ["a", "b", "d"]
    assert not tasks.try_spawn(work("e"), "shadow")  # closed


async def test_a_spawn_waiting_for_a_slot_gets_one_when_a_task_ends():
    tasks = BackgroundTasks(limit=1)
    await tasks.spawn(asyncio.sleep(0.05), "first")
    await asyncio.wait_for(tasks.spawn(asyncio.sleep(0), "second"), timeout=1)
    assert await tasks.wait_and_close(1) == 0


async def test_a_periodic_action_goes_on_after_a_failure_and_stops_with_its_context():
    calls, errors = [], []

    async def action():
        calls.append(len(calls))
        if len(calls) == 1:
            raise ConnectionError("database down")

    async with Periodic("poll", 0.01, action, on_error=errors.append):
        while len(calls) < 3:
            await asyncio.sleep(0.01)
    stopped_at = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == stopped_at and [type(e) for e in errors] == [ConnectionError]
