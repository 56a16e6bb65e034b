"""User history for triage: posts and moderator discards in the last months, cached briefly.

Computed from ``posts`` and ``moderation_decisions`` on SQLite or PostgreSQL through the
:class:`~orchestrator.db.stores.Store` interface. Counts are cached per user for a short TTL:
a triage decision tolerates a history a minute old, and popular users' posts cross the
views nets in bursts.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from cachetools import TTLCache

from orchestrator.clock import iso_utc
from orchestrator.db import Store

POSTS_SQL = "SELECT COUNT(*) FROM posts WHERE user_id = ? AND created_at >= ?"
DISCARDS_SQL = ("SELECT COUNT(DISTINCT post_id) FROM moderation_decisions "
                "WHERE user_id = ? AND decision = 'discard' AND decided_at >= ?")


@dataclass(frozen=True)
class UserHistory:
    user_id: str
    posts: int  # posts created in the window
    discards: int  # of the user's posts, how many moderators discarded in the window
    window_days: int
    since: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class HistoryRepository:
    """Async, cached access to a user's recent history."""

    def __init__(self, store: Store, *, window_days: int = 182, ttl_s: float = 60.0,
                 max_users: int = 100_000) -> None:
        self.store = store
        self.window_days = window_days
        self._cache: TTLCache[str, UserHistory] = TTLCache(max_users, ttl_s)

    async def get(self, user_id: str) -> UserHistory:
        """The user's history as of now (from the cache when fresh)."""
        cached = self._cache.get(user_id)
        if cached is not None:
            return cached
        since = iso_utc(datetime.now(timezone.utc) - timedelta(days=self.window_days))
        (posts,), (discards,) = await asyncio.gather(
            self._one(POSTS_SQL, user_id, since), self._one(DISCARDS_SQL, user_id, since))
        history = UserHistory(user_id, int(posts), int(discards), self.window_days, since)
        self._cache[user_id] = history
        return history

    async def _one(self, sql: str, *params: Any) -> tuple:
        rows = await self.store.fetch_all(sql, params)
        return rows[0]
