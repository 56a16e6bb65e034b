"""The quality sink holds the Sink contract: the flow may write the same results again (after
a transient error, or one by one after a refusal), and nothing may count twice."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from orchestrator.config import QualityConfig
from orchestrator.db import TableSink
from orchestrator.db.stores import SqliteStore
from orchestrator.messages import DecisionMessage, Envelope
from orchestrator.monitoring import ScoredClip
from orchestrator.pipelines.quality import Judged
from tests.orchestrator.fakes import quality_book

CONFIG = QualityConfig(window=100, min_decisions=2, propose_every=4, recall_target=0.5)


class FailingOnce:
    """A store whose next write to ``table`` fails once, as a database restart would."""

    def __init__(self, store: SqliteStore, table: str) -> None:
        self.store, self.table, self.armed = store, table, False

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.armed and f"INSERT INTO {self.table} " in sql:
            self.armed = False
            raise ConnectionError("database went away")
        await self.store.execute_many(sql, rows)

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return await self.store.fetch_all(sql, params)


def judged(index: int, *, positive: bool) -> Judged:
    decision = DecisionMessage(Envelope("review.decisions", 0, index, b"k", b"{}"),
                               f"clip-{index}", "clip", "discard" if positive else "keep",
                               "m1", 1_800_000_000.0)
    return Judged(decision, ScoredClip("audio_nsfw_hi", "1.0", "hi", 0.1 * index, 0.5,
                                       "2027-01-01T00:00:00Z"))


async def proposals(store: SqliteStore) -> list[tuple]:
    return await store.fetch_all("SELECT decisions, threshold FROM threshold_proposals")


def test_writing_the_same_decisions_twice_counts_them_once(tmp_path):
    async def main() -> tuple[int, list[tuple]]:
        async with SqliteStore(str(tmp_path / "v.db")) as store:
            book = quality_book(store, CONFIG)
            batch = [judged(i, positive=i % 2 == 1) for i in range(1, 4)]
            await book.write(batch)
            await book.write(batch)  # the flow retries the whole batch
            await book.write(batch[1:])  # then a subset
            return book._windows[("audio_nsfw_hi", "1.0", "hi")].added, \
                await proposals(store)

    added, written = asyncio.run(main())
    # Three distinct decisions: short of propose_every, so no proposal yet.
    assert added == 3 and written == []


def test_a_proposal_whose_write_failed_is_written_when_the_flow_retries(tmp_path):
    async def main() -> list[tuple]:
        async with SqliteStore(str(tmp_path / "v.db")) as store:
            flaky = FailingOnce(store, "threshold_proposals")
            book = quality_book(flaky, CONFIG)
            batch = [judged(i, positive=i % 2 == 1) for i in range(1, 5)]
            flaky.armed = True
            with pytest.raises(ConnectionError):
                await book.write(batch)  # the fourth decision makes a proposal due
            await book.write(batch)
            return await proposals(store)

    assert asyncio.run(main()) == [(4, pytest.approx(0.3))]


def test_the_decisions_table_sink_written_twice_holds_one_row_per_decision(tmp_path):
    async def main() -> list[tuple]:
        async with SqliteStore(str(tmp_path / "v.db")) as store:
            sink = TableSink(store, "review_decisions", Judged.row)
            batch = [judged(i, positive=i % 2 == 1) for i in range(1, 4)]
            await sink.write(batch)
            await sink.write(batch[1:])
            return await store.fetch_all(
                "SELECT item_id, decision FROM review_decisions ORDER BY item_id")

    assert asyncio.run(main()) == [("clip-1", "discard"), ("clip-2", "keep"),
                                   ("clip-3", "discard")]


class SlowProposals:
    """A store whose proposal writes take a while, as a busy database's would."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if "INSERT INTO threshold_proposals " in sql:
            await asyncio.sleep(0.2)
        await self.store.execute_many(sql, rows)

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return await self.store.fetch_all(sql, params)


def test_concurrent_writes_keep_each_other_s_decisions(tmp_path):
    # Side effects write concurrently: a write that waits on its proposal must not keep
    # window copies that lack what a second write added meanwhile.
    async def main() -> int:
        async with SqliteStore(str(tmp_path / "v.db")) as store:
            book = quality_book(SlowProposals(store), CONFIG)
            first = [judged(i, positive=i % 2 == 1) for i in range(1, 5)]  # a proposal is due
            second = [judged(i, positive=True) for i in range(5, 8)]
            await asyncio.gather(book.write(first), book.write(second))
            return len(book._windows[("audio_nsfw_hi", "1.0", "hi")])

    assert asyncio.run(main()) == 7
