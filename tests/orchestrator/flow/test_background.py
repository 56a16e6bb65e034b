import asyncio

from orchestrator.flow import BackgroundTasks


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
