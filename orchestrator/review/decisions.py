"""Decisions: held for ``review.undo_s`` (undoable), then sent to ``review.decisions`` in
the format the quality daemon reads, once per item and moderator.

A decision is a ``review_pending`` row keyed by item and moderator: deciding again before it
is sent replaces it, an undo deletes it, and the sender (every second) produces each due
row and then marks it sent. A crash between the two sends it again on restart, with the
same ``decided_at``: the quality daemon keeps the newest decision per item, so the copy
changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson

from orchestrator.clock import iso_from_epoch
from orchestrator.db import Store, select, upsert
from orchestrator.kafka import EventProducer
from orchestrator.messages import valid_identifier

logger = logging.getLogger(__name__)
# Why an item was discarded: the VRT head's unsafe classes (modelzoo/fusion.py), and other.
CATEGORIES = ("nudity", "sexual", "violence", "gore", "abusive", "hate", "other")


@dataclass(frozen=True, slots=True)
class Decision:
    kind: str
    item_id: str
    moderator_id: str
    decision: str  # discard | keep
    category: str | None  # why it was discarded

    def __post_init__(self) -> None:
        if not valid_identifier(self.item_id):
            raise ValueError("item_id must be 1..256 printable characters")
        if self.decision not in ("discard", "keep"):
            raise ValueError(f"decision must be discard or keep, not {self.decision!r}")
        if self.kind not in ("clip", "post"):
            raise ValueError(f"kind must be clip or post, not {self.kind!r}")
        if self.category is not None and self.category not in CATEGORIES:
            raise ValueError(f"category must be one of {CATEGORIES}")


class PendingDecisions:
    def __init__(self, store: Store, producer: EventProducer, topic: str,
                 undo_s: float) -> None:
        self.store = store
        self.producer = producer
        self.topic = topic
        self.undo_s = undo_s

    async def decide(self, decision: Decision, now: float) -> str:
        """Hold ``decision``; returns until when it can be undone (ISO 8601)."""
        until = iso_from_epoch(now + self.undo_s)
        await upsert(self.store, "review_pending", [{
            "item_id": decision.item_id, "kind": decision.kind,
            "moderator_id": decision.moderator_id, "decision": decision.decision,
            "category": decision.category, "decided_at": iso_from_epoch(now),
            "send_after": until, "sent_at": None}])
        return until

    async def undo(self, kind: str, item_id: str, moderator: str) -> bool:
        """Drop the moderator's decision on the item if it was not sent yet."""
        rows = await select(self.store, "review_pending", "WHERE item_id = ? AND kind = ? AND "
                            "moderator_id = ? AND sent_at IS NULL", [item_id, kind, moderator])
        if not rows:
            return False
        await self.store.execute_many(
            "DELETE FROM review_pending WHERE item_id = ? AND kind = ? AND moderator_id = ? "
            "AND sent_at IS NULL", [(item_id, kind, moderator)])
        return True

    async def send_due(self, now: float) -> int:
        """Produce every decision whose undo delay has passed; returns how many."""
        due = await select(self.store, "review_pending",
                           "WHERE sent_at IS NULL AND send_after <= ? ORDER BY send_after",
                           [iso_from_epoch(now)])
        for row in due:
            event = {"item_id": row["item_id"], "kind": row["kind"],
                     "decision": row["decision"], "moderator_id": row["moderator_id"],
                     "decided_at": row["decided_at"]}
            if row["category"]:
                event["category"] = row["category"]
            await self.producer.produce(self.topic, orjson.dumps(event),
                                        f"{row['kind']}:{row['item_id']}".encode())
            await self.store.execute_many(
                "UPDATE review_pending SET sent_at = ? WHERE item_id = ? AND kind = ? AND "
                "moderator_id = ?", [(iso_from_epoch(now), row["item_id"], row["kind"],
                                      row["moderator_id"])])
        return len(due)
