"""Quality reads back each decided clip's score by column name, and only the decisions that
can measure it: made after the clip was scored, and not from the future."""

from __future__ import annotations

import asyncio

from orchestrator.db import upsert
from orchestrator.db.stores import SqliteStore
from orchestrator.monitoring import ScoredClip, ScoredClips

SCORED_AT = "2026-01-01T00:00:00Z"


def verdict(clip_id: str, score: float, threshold: float | None) -> dict:
    return {"clip_id": clip_id, "stream_id": "s", "language": "hi", "model": "audio_nsfw_hi",
            "model_version": "1.0", "score": score, "label": "safe", "threshold": threshold,
            "scored_at": SCORED_AT}


def decision(item_id: str, decision: str, decided_at: str) -> dict:
    return {"item_id": item_id, "kind": "clip", "decision": decision, "moderator_id": "m1",
            "decided_at": decided_at}


def test_scored_clips_and_decisions_are_read_by_name_oldest_decision_first(tmp_path):
    async def main():
        async with SqliteStore(str(tmp_path / "v.db")) as store:
            await upsert(store, "audio_verdicts", [
                verdict(clip_id, 0.9, 0.5) for clip_id in ("a", "b", "early", "future")]
                + [verdict("c", 0.7, None)])
            await upsert(store, "review_decisions", [
                decision("b", "keep", "2026-01-03T00:00:00Z"),
                decision("a", "discard", "2026-01-02T00:00:00Z"),
                decision("c", "discard", "2026-01-04T00:00:00Z"),  # no threshold
                decision("early", "discard", "2025-12-31T23:59:59Z"),  # before scoring
                decision("future", "discard", "2027-01-01T00:00:00Z")])
            clips = ScoredClips(store)
            return (await clips.of(["a", "c", "missing"]),
                    await clips.decided(limit=10, until="2026-06-01T00:00:00Z"),
                    await clips.recorded(["a", "missing"]))

    scored, decided, recorded = asyncio.run(main())
    assert scored == {"a": ScoredClip("audio_nsfw_hi", "1.0", "hi", 0.9, 0.5, SCORED_AT)}
    assert [(d.clip_id, d.positive) for d in decided] == [("a", True), ("b", False)]
    assert recorded == {"a": "2026-01-02T00:00:00Z"}


def test_a_database_without_a_later_column_gains_it_in_place(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:  # review_decisions as it was before moderator_id
        old.execute("CREATE TABLE review_decisions (item_id TEXT NOT NULL, kind TEXT NOT NULL, "
                    "decision TEXT NOT NULL, decided_at TEXT NOT NULL, "
                    "PRIMARY KEY (item_id, kind))")
        old.execute("INSERT INTO review_decisions VALUES ('a', 'clip', 'keep', ?)", (SCORED_AT,))

    async def main():
        async with SqliteStore(str(path)) as store:
            await upsert(store, "review_decisions",
                         [decision("b", "discard", "2026-01-02T00:00:00Z")])
            return await store.fetch_all(
                "SELECT item_id, moderator_id FROM review_decisions ORDER BY item_id")

    assert asyncio.run(main()) == [("a", None), ("b", "m1")]
