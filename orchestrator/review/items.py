"""What moderators review, read from the tables the daemons write: three queues, oldest
first, and the details of one item.

- ``posts``: new posts whose first-line (VRT) score is at or over ``review.post_threshold``;
- ``minview``: posts the min-view triage sent to ``review_queue``;
- ``clips``: livestream clips in ``review_samples`` (every flagged clip and the audit sample;
  an audit item looks like any other).

An item leaves its queue once it has a decision (recorded, or waiting out its undo delay), and
is hidden from other moderators while someone's claim on it holds. Each listing reads one
indexed range (the queue's time column) and anti-joins decisions, claims and pending
decisions by primary key: no full scans, whatever the queue's length. Decided items stay in
the tables the daemons write, so a queue worked oldest first grows a decided head that every
listing would walk past; each queue's floor (the oldest undecided item's time, less
:data:`FLOOR_MARGIN_S` for items written late) is found once a minute
(:meth:`ReviewItems.advance_floors`) and listings start there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from orchestrator.clock import iso_from_epoch, parse_iso
from orchestrator.config import ReviewConfig
from orchestrator.db import Store

QUEUES = {"posts": "New posts by first-line score", "minview": "Min-view nets",
          "clips": "Livestream clips"}

# Each queue as (kind, FROM ... WHERE, its time column, the score): one row per item.
_SOURCES = {
    "posts": ("post", "post_scores q JOIN posts p ON p.post_id = q.post_id "
                      "WHERE q.score >= ?", "q.created_at", "q.score"),
    "minview": ("post", "review_queue q JOIN posts p ON p.post_id = q.post_id WHERE 1 = ?",
                "q.enqueued_at", "q.score"),
    "clips": ("clip", "review_samples q WHERE q.kind = 'clip' AND 1 = ?", "q.sampled_at",
              "q.score"),
}
_ID = {"post": "q.post_id", "clip": "q.item_id"}
# Items can be written a little after their time (a batch retried for minutes): the floor
# stays this far below the oldest undecided item.
FLOOR_MARGIN_S = 3600.0
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".m4v")


@dataclass(frozen=True, slots=True)
class QueueEntry:
    kind: str
    item_id: str
    queued_at: str
    score: float | None
    seconds_left: float  # of the queue's SLA; negative once overdue


@dataclass(frozen=True, slots=True)
class Item:
    """One item as the item page shows it. Every text here came from a post or a clip and is
    rendered as text."""

    kind: str
    item_id: str
    user_id: str | None
    caption: str | None
    media_url: str | None
    score: float | None
    threshold: float | None
    label: str | None
    categories: dict[str, float]
    model: str | None
    version: str | None
    language: str | None
    queued_at: str | None

    @property
    def is_video(self) -> bool:
        """Whether the post's media is a video (by its URL: the page shows it in a player)."""
        path = (self.media_url or "").lower().split("?")[0]
        return path.endswith(VIDEO_SUFFIXES)


class ReviewItems:
    """The queues and items, read only."""

    def __init__(self, store: Store, config: ReviewConfig) -> None:
        self.store = store
        self.config = config
        self._floors = {name: "" for name in QUEUES}  # ISO 8601; "" is before everything

    async def advance_floors(self, now: float) -> None:
        """Move each queue's floor up to its oldest item without a recorded decision (less
        the margin): what is under it is decided for good."""
        for name, (kind, source, time_column, _) in _SOURCES.items():
            item_id = _ID[kind]
            first = self.config.post_threshold if name == "posts" else 1
            rows = await self.store.fetch_all(
                f"SELECT {time_column} FROM {source} AND {time_column} >= ? "
                f"AND NOT EXISTS (SELECT 1 FROM review_decisions d WHERE d.item_id = "
                f"{item_id} AND d.kind = ?) ORDER BY {time_column} LIMIT 1",
                [first, self._floors[name], kind])
            oldest = parse_iso(rows[0][0]) if rows and rows[0][0] else now
            self._floors[name] = max(self._floors[name], iso_from_epoch(oldest - FLOOR_MARGIN_S))

    def _sla_s(self, queue: str) -> float:
        return {"posts": self.config.post_sla_s, "minview": self.config.minview_sla_s,
                "clips": self.config.clip_sla_s}[queue]

    async def queue(self, queue: str, moderator: str, now: float,
                    limit: int | None = None) -> list[QueueEntry]:
        """The undecided items of ``queue`` nobody else holds, oldest first."""
        kind, source, time_column, score = _SOURCES[queue]
        item_id = _ID[kind]
        first = self.config.post_threshold if queue == "posts" else 1
        rows = await self.store.fetch_all(
            f"SELECT {item_id}, {time_column}, {score} FROM {source} AND {time_column} >= ? "
            f"AND NOT EXISTS (SELECT 1 FROM review_decisions d WHERE d.item_id = {item_id} "
            f"AND d.kind = ?) "
            f"AND NOT EXISTS (SELECT 1 FROM review_pending w WHERE w.item_id = {item_id} "
            f"AND w.kind = ?) "
            f"AND NOT EXISTS (SELECT 1 FROM review_claims c WHERE c.item_id = {item_id} "
            f"AND c.kind = ? AND c.expires_at > ? AND c.moderator_id <> ?) "
            f"ORDER BY {time_column} LIMIT ?",
            [first, self._floors[queue], kind, kind, kind, iso_from_epoch(now), moderator,
             limit or self.config.page_size])
        sla = self._sla_s(queue)
        return [QueueEntry(kind, row[0], row[1], row[2],
                           sla - (now - parse_iso(row[1])) if row[1] else sla)
                for row in rows]

    async def counts(self, moderator: str, now: float) -> dict[str, int]:
        """How many items each queue shows ``moderator`` (up to a page more than shown)."""
        return {name: len(await self.queue(name, moderator, now, limit=1000))
                for name in QUEUES}

    async def item(self, kind: str, item_id: str) -> Item | None:
        if kind == "clip":
            return await self._clip(item_id)
        return await self._post(item_id)

    async def _clip(self, clip_id: str) -> Item | None:
        rows = await self.store.fetch_all(
            "SELECT s.media_url, s.score, s.threshold, s.model, s.version, s.language, "
            "s.sampled_at, v.stream_id, v.label FROM review_samples s LEFT JOIN "
            "audio_verdicts v ON v.clip_id = s.item_id WHERE s.kind = 'clip' "
            "AND s.item_id = ?", [clip_id])
        if not rows:
            return None
        media_url, score, threshold, model, version, language, sampled_at, stream, label = \
            rows[0]
        return Item("clip", clip_id, stream, None, media_url, score, threshold, label, {},
                    model, version, language, sampled_at)

    async def _post(self, post_id: str) -> Item | None:
        rows = await self.store.fetch_all(
            "SELECT p.user_id, p.caption, p.media_url, p.created_at, s.score, "
            "s.top_category, s.categories, s.model_version FROM posts p LEFT JOIN "
            "post_scores s ON s.post_id = p.post_id WHERE p.post_id = ?", [post_id])
        if not rows:
            return None
        user_id, caption, media_url, created_at, score, top, categories, version = rows[0]
        return Item("post", post_id, user_id, caption, media_url, score, None, top,
                    _categories(categories), "vrt_fusion" if version else None, version,
                    None, created_at)

    async def user_decisions(self, user_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """Earlier decisions on the user's posts, newest first."""
        rows = await self.store.fetch_all(
            "SELECT post_id, decision, decided_at FROM moderation_decisions "
            "WHERE user_id = ? ORDER BY decided_at DESC LIMIT ?", [user_id, limit])
        return [{"post_id": p, "decision": d, "decided_at": t} for p, d, t in rows]


def _categories(text: str | None) -> dict[str, float]:
    """The stored category probabilities; {} for anything else."""
    try:
        found = json.loads(text) if text else {}
        return {str(k): float(v) for k, v in found.items()}
    except (ValueError, TypeError, AttributeError):
        return {}
