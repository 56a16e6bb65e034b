"""Claims: an opened item is one moderator's for ``review.claim_s``, so two moderators never
work on it at once; a claim nobody renews expires and the item comes back."""

from __future__ import annotations

from orchestrator.clock import iso_from_epoch
from orchestrator.db import Store

# Take the row, or keep it: a claim is taken over only once expired, or renewed by its holder.
CLAIM_SQL = (
    "INSERT INTO review_claims (item_id, kind, moderator_id, claimed_at, expires_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (item_id, kind) DO UPDATE SET "
    "moderator_id = excluded.moderator_id, claimed_at = excluded.claimed_at, "
    "expires_at = excluded.expires_at WHERE review_claims.expires_at <= excluded.claimed_at "
    "OR review_claims.moderator_id = excluded.moderator_id")


class Claims:
    def __init__(self, store: Store, claim_s: float) -> None:
        self.store = store
        self.claim_s = claim_s

    async def claim(self, kind: str, item_id: str, moderator: str, now: float) -> bool:
        """Take or renew the claim on an item; False when another moderator holds it."""
        await self.store.execute_many(CLAIM_SQL, [(item_id, kind, moderator, iso_from_epoch(now),
                                                   iso_from_epoch(now + self.claim_s))])
        holder = await self.store.fetch_all(
            "SELECT moderator_id FROM review_claims WHERE item_id = ? AND kind = ?",
            [item_id, kind])
        return bool(holder) and holder[0][0] == moderator

    async def release(self, kind: str, item_id: str, moderator: str) -> None:
        await self.store.execute_many(
            "DELETE FROM review_claims WHERE item_id = ? AND kind = ? AND moderator_id = ?",
            [(item_id, kind, moderator)])
