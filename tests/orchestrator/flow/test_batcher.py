import asyncio

import pytest

from orchestrator.config import BatchConfig
from orchestrator.flow import MicroBatcher


async def _collect(batcher):
    return [batch.items async for batch in batcher.batches()]


async def test_batches_close_at_eight_items():
    batcher = MicroBatcher(BatchConfig(max_size=8, max_wait_s=5.0))
    for item in range(20):
        await batcher.put(item)
    await batcher.close()
    batches = await asyncio.wait_for(_collect(batcher), 2)
    assert [len(b) for b in batches] == [8, 8, 4]
    assert [i for b in batches for i in b] == list(range(20))


async def test_a_partial_batch_closes_after_the_max_wait():
    batcher = MicroBatcher(BatchConfig(max_size=8, max_wait_s=0.05))
    await batcher.put("a")
    await batcher.put("b")
    iterator = batcher.batches()
    batch = await asyncio.wait_for(iterator.__anext__(), 2)
    assert batch.items == ["a", "b"]
    assert 0.04 <= batch.waited_s < 1.0
    await batcher.close()
    with pytest.raises(StopAsyncIteration):
        await iterator.__anext__()


async def test_put_blocks_when_full_and_refuses_after_close():
    batcher = MicroBatcher(BatchConfig(), capacity=2)
    await batcher.put(1)
    await batcher.put(2)
    blocked = asyncio.create_task(batcher.put(3))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    iterator = batcher.batches()
    first = await asyncio.wait_for(iterator.__anext__(), 2)
    await asyncio.wait_for(blocked, 2)  # room was made: the third put went through
    assert first.items == [1, 2, 3]  # it joined the open batch
    await batcher.close()
    with pytest.raises(RuntimeError):
        await batcher.put(4)


def test_batch_size_above_eight_is_a_config_error():
    with pytest.raises(ValueError):
        BatchConfig(max_size=9)
