"""Quality reads back each decided clip's score by column name, and skips what it cannot
judge."""

from __future__ import annotations

import asyncio

from orchestrator.db import upsert
from orchestrator.db.stores import SqliteStore
from orchestrator.monitoring import ScoredClip, ScoredClips


def verdict(clip_id: str, score: float, threshold: float | None) -> dict:
    return {"clip_id": clip_id, "stream_id": "s", "language": "hi", "model": "audio_nsfw_hi",
            "model_version": "1.0", "score": score, "label": "safe", "threshold": threshold,
            "scored_at": "2026-01-01T00:00:00Z"}


def test_scored_clips_and_decisions_are_read_by_name_oldest_decision_first(tmp_path):
    async def main():
        async with SqliteStore(str(tmp_path / "v.db")) as store:
            await upsert(store, "audio_verdicts", [verdict("a", 0.9, 0.5),
                                                   verdict("b", 0.2, 0.5),
                                                   verdict("c", 0.7, None)])
            await upsert(store, "review_decisions", [
                {"item_id": "b", "kind": "clip", "decision": "keep",
                 "decided_at": "2026-01-02T00:00:00Z"},
                {"item_id": "a", "kind": "clip", "decision": "discard",
                 "decided_at": "2026-01-01T00:00:00Z"},
                {"item_id": "c", "kind": "clip", "decision": "discard",
                 "decided_at": "2026-01-03T00:00:00Z"}])
            clips = ScoredClips(store)
            return await clips.of(["a", "c", "missing"]), await clips.decided(limit=10)

    scored, decided = asyncio.run(main())
    assert scored == {"a": ScoredClip("audio_nsfw_hi", "1.0", "hi", 0.9, 0.5)}
    assert [(d.clip_id, d.positive) for d in decided] == [("a", True), ("b", False)]
