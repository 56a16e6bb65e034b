"""Decisions cannot be forged or replayed into the quality figures: the newest decision per
item wins, copies count once, and a decision made before its clip was scored measures
nothing, now or after a restart."""

from __future__ import annotations

import asyncio
import random

from orchestrator.clock import iso_from_epoch
from orchestrator.config import QualityConfig
from orchestrator.db import TableSink, upsert
from orchestrator.db.stores import SqliteStore
from orchestrator.messages import DecisionMessage, Envelope
from orchestrator.monitoring import ScoredClips
from orchestrator.pipelines.quality import DecisionJoiner, Judged
from tests.orchestrator.fakes import quality_book

CONFIG = QualityConfig(window=1000, min_decisions=10, propose_every=50, recall_target=0.9)
SCORED = 1_790_000_000.0  # when the clips were scored
KEY = ("audio_nsfw_hi", "1.0", "hi")


class Quality:
    """The quality daemon's scorer and sinks over one SQLite file, as the flow calls them."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        clips = ScoredClips(store)
        self.joiner = DecisionJoiner(clips)
        self.table = TableSink(store, "review_decisions", Judged.row, newest="decided_at")
        self.book = quality_book(store, CONFIG)

    async def handle(self, decisions: list[DecisionMessage]) -> None:
        for start in range(0, len(decisions), 8):
            judged = await self.joiner.score(decisions[start:start + 8])
            await self.table.write(judged)
            await self.book.write(judged)

    def figures(self) -> tuple[float | None, float | None, int]:
        window = self.book._windows[KEY]
        return (*window.rates(), window.added)


def decision(clip: int, positive: bool, at: float) -> DecisionMessage:
    return DecisionMessage(Envelope("review.decisions", 0, 0, None, b"{}"), f"clip-{clip}",
                           "clip", "discard" if positive else "keep", "m1", at)


async def seeded(store: SqliteStore, truth: list[bool]) -> None:
    rng = random.Random(3)
    await upsert(store, "audio_verdicts", [
        {"clip_id": f"clip-{index}", "stream_id": "s", "language": "hi",
         "model": "audio_nsfw_hi", "model_version": "1.0",
         "score": min(1.0, max(0.0, rng.gauss(0.7 if positive else 0.3, 0.2))),
         "label": "safe", "threshold": 0.5, "scored_at": iso_from_epoch(SCORED)}
        for index, positive in enumerate(truth)])


def test_an_inverted_replay_dated_earlier_and_copies_change_no_figure(tmp_path):
    truth = [random.Random(index).random() < 0.3 for index in range(120)]

    async def main():
        async with SqliteStore(str(tmp_path / "v.db")) as store:
            await seeded(store, truth)
            quality = Quality(store)
            await quality.handle([decision(i, t, SCORED + 100 + i) for i, t in enumerate(truth)])
            honest = quality.figures()
            proposals = await store.fetch_all("SELECT COUNT(*) FROM threshold_proposals")
            # Every decision inverted and dated before the honest ones, then 500 copies of
            # one honest decision.
            await quality.handle([decision(i, not t, SCORED + 50) for i, t in enumerate(truth)])
            await quality.handle([decision(0, truth[0], SCORED + 100)] * 500)
            stored = await store.fetch_all(
                "SELECT COUNT(*) FROM review_decisions WHERE decided_at = ?",
                [iso_from_epoch(SCORED + 50)])
            return (honest, quality.figures(), proposals,
                    await store.fetch_all("SELECT COUNT(*) FROM threshold_proposals"), stored)

    honest, after, proposals_before, proposals_after, replayed_rows = asyncio.run(main())
    assert honest[2] == len(truth) and honest[0] is not None
    assert after == honest and proposals_after == proposals_before
    assert replayed_rows == [(0,)]  # the table kept the newest decision of every item


def test_a_newer_decision_replaces_the_older_and_one_made_before_scoring_never_counts(
        tmp_path):
    async def main():
        async with SqliteStore(str(tmp_path / "v.db")) as store:
            await seeded(store, [True, False, True])
            quality = Quality(store)
            await quality.handle([decision(0, True, SCORED + 10), decision(1, False, SCORED + 10),
                                  decision(2, True, SCORED - 10)])  # before its clip was scored
            first = quality.figures()
            await quality.handle([decision(0, False, SCORED + 20)])  # a moderator changed it
            changed = quality.figures()
            restarted = Quality(store)
            await restarted.book.restore()
            return first, changed, restarted.figures()

    first, changed, restored = asyncio.run(main())
    assert first[2] == 2  # clip-2's decision came before the clip was scored
    assert changed[2] == 2 and changed[1] != first[1]  # replaced, not added
    assert restored[:2] == changed[:2] and restored[2] == 2
