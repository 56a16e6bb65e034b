"""A small, fully known world for the min-view triage: users with history inside and outside
the 6-month window, posts with and without a first-line score, and their views events.

Shared by the integration tests and the demo; written through Vigil's own store."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from orchestrator.clock import iso_utc
from orchestrator.db import Store, open_store, upsert

RECENT_DAYS = 30
OLD_DAYS = 300  # outside the 6-month window


@dataclass
class TriageWorld:
    posts: list[dict] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    triage_posts: list[str] = field(default_factory=list)  # the ones views events are about
    owner: dict[str, str] = field(default_factory=dict)
    history: dict[str, tuple[int, int]] = field(default_factory=dict)  # user -> (posts, discards)

    def features(self, post_id: str) -> tuple[float | None, int, int]:
        """(score, user's posts in the window, user's discards in the window)."""
        return (self.scores.get(post_id), *self.history[self.owner[post_id]])

    def seed(self, database_url: str) -> None:
        """Write the world into the database at ``database_url`` (from synchronous code)."""
        async def seed() -> None:
            async with open_store(database_url) as store:
                await self.write(store)

        asyncio.run(seed())

    async def write(self, store: Store) -> None:
        """Write posts, moderator decisions and first-line scores into ``store``."""
        await upsert(store, "posts", self.posts)
        await store.execute_many(
            "INSERT INTO moderation_decisions (post_id, user_id, decision, decided_at) "
            "VALUES (?, ?, ?, ?)",
            [(d["post_id"], d["user_id"], d["decision"], d["decided_at"])
             for d in self.decisions])
        await upsert(store, "post_scores", [
            {"post_id": p, "user_id": self.owner[p], "score": s, "top_category": None,
             "categories": "{}", "model_version": "test", "created_at": None,
             "scored_at": iso_utc()} for p, s in self.scores.items()])


def make_world(users: int = 12, posts: int = 40, seed: int = 0) -> TriageWorld:
    """Users with 1..9 recent posts (some discarded) plus old ones that must not count."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    world = TriageWorld()
    recent_posts: dict[str, list[str]] = {}
    for u in range(users):
        user = f"user-{u}"
        recent = [f"hist-{u}-{i}" for i in range(1 + u % 9)]
        old = [f"old-{u}-{i}" for i in range(3)]
        recent_posts[user] = recent
        for post_id, days in [(p, RECENT_DAYS) for p in recent] + [(p, OLD_DAYS) for p in old]:
            world.posts.append({"post_id": post_id, "user_id": user,
                                "created_at": iso_utc(now - timedelta(days=days))})
        discarded = recent[:u % 4]
        for post_id in discarded:
            world.decisions.append({"post_id": post_id, "user_id": user, "decision": "discard",
                                    "decided_at": iso_utc(now - timedelta(days=RECENT_DAYS - 1))})
        world.decisions.append({"post_id": old[0], "user_id": user, "decision": "discard",
                                "decided_at": iso_utc(now - timedelta(days=OLD_DAYS))})
        world.decisions.append({"post_id": recent[-1], "user_id": user, "decision": "approve",
                                "decided_at": iso_utc(now - timedelta(days=1))})
    for i in range(posts):
        user = f"user-{i % users}"
        post_id = f"post-{i}"
        world.triage_posts.append(post_id)
        world.owner[post_id] = user
        world.posts.append({"post_id": post_id, "user_id": user,
                            "created_at": iso_utc(now - timedelta(days=2))})
        if i % 10 != 9:  # every tenth post has no first-line score yet
            world.scores[post_id] = round(rng.betavariate(0.6, 2.0), 4)
    for user, recent in recent_posts.items():
        own = sum(1 for p in world.triage_posts if world.owner[p] == user)
        discards = sum(1 for d in world.decisions if d["user_id"] == user
                       and d["decision"] == "discard" and d["post_id"].startswith("hist-"))
        world.history[user] = (len(recent) + own, discards)
    return world


def views_events(world: TriageWorld, seed: int = 0) -> tuple[list[dict], dict[str, int]]:
    """Rising views per post (below, between and above the nets), with repeats; and the
    highest views each post reaches."""
    rng = random.Random(seed)
    events, reached = [], {}
    for index, post_id in enumerate(world.triage_posts):
        path = [(400, 900), (400, 1100, 1500), (800, 1200, 2100, 2600, 2600)][index % 3]
        reached[post_id] = max(path)
        events += [{"post_id": post_id, "views": v, "at": iso_utc()} for v in path]
    rng.shuffle(events)
    return events, reached


def encoded(events: list[dict]) -> list[tuple[bytes, bytes]]:
    return [(e["post_id"].encode(), json.dumps(e).encode()) for e in events]
