"""What the triage reads and writes in the database: viewed posts' users and first-line
scores, its decisions per post and net, and the review queue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.db import Store, placeholders, select, upsert

Decisions = dict[tuple[str, int], dict[str, Any]]  # (post_id, net) → triage_decisions row


class TriageRecords:
    """``posts``, ``post_scores``, ``triage_decisions`` and ``review_queue`` for the triage."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def users(self, post_ids: Sequence[str]) -> dict[str, str]:
        """Each known post's user."""
        rows = await select(self.store, "posts", f"WHERE post_id IN ({placeholders(post_ids)})",
                            post_ids)
        return {row["post_id"]: row["user_id"] for row in rows}

    async def scores(self, post_ids: Sequence[str]) -> dict[str, float]:
        """Each scored post's first-line score."""
        rows = await select(self.store, "post_scores",
                            f"WHERE post_id IN ({placeholders(post_ids)}) AND score IS NOT NULL",
                            post_ids)
        return {row["post_id"]: row["score"] for row in rows}

    async def decisions(self, post_ids: Sequence[str]) -> Decisions:
        """The decisions recorded for the posts, by post and net."""
        rows = await select(self.store, "triage_decisions",
                            f"WHERE post_id IN ({placeholders(post_ids)})", post_ids)
        return {(row["post_id"], int(row["net"])): row for row in rows}

    async def record(self, decisions: Sequence[dict[str, Any]]) -> None:
        """Record new decisions; the first recorded for a post and net wins."""
        await upsert(self.store, "triage_decisions", decisions, keep_existing=True)

    async def enqueue(self, decision: dict[str, Any]) -> None:
        """Put a decided post on ``review_queue`` (once per post and net)."""
        await upsert(self.store, "review_queue",
                     [{**decision, "enqueued_at": decision["decided_at"]}], keep_existing=True)

    async def mark_published(self, decision: dict[str, Any]) -> None:
        await self.store.execute_many(
            "UPDATE triage_decisions SET published = 1 WHERE post_id = ? AND net = ?",
            [(decision["post_id"], decision["net"])])
