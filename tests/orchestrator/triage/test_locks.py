import asyncio

from orchestrator.triage import KeyedLocks


async def test_overlapping_keys_are_exclusive_and_disjoint_keys_are_not():
    locks, log = KeyedLocks(), []

    async def hold(name: str, keys: list[str]) -> None:
        async with locks.hold(keys):
            log.append(f"{name}+")
            await asyncio.sleep(0.01)
            log.append(f"{name}-")

    await asyncio.gather(hold("a", ["p1", "p2"]), hold("b", ["p2", "p1"]), hold("c", ["p3"]))
    assert log.index("a-") < log.index("b+")  # a and b share keys: one after the other
    assert log.index("c+") < log.index("a-")  # c shares none: it ran alongside a
    assert len(locks) == 0  # nothing left behind


async def test_a_cancelled_waiter_releases_nothing_it_did_not_take():
    locks = KeyedLocks()
    async with locks.hold(["k"]):
        waiter = asyncio.create_task(_enter(locks, ["j", "k"]))
        await asyncio.sleep(0.01)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
    async with locks.hold(["j", "k"]):  # both free again
        pass
    assert len(locks) == 0


async def _enter(locks: KeyedLocks, keys: list[str]) -> None:
    async with locks.hold(keys):
        pass
