"""What quality reads back: the score each decided clip got (its ``audio_verdicts`` row),
and the moderators' decisions recorded on scored clips.

A decision measures a verdict only when it is about a clip scored before it was made (a
decision that comes first is about something else, or forged) and it is newer than the
decision already recorded for the clip: a replay or a duplicate changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.db import Store, placeholders, select

COLUMNS = ("clip_id", "model", "model_version", "language", "score", "threshold", "scored_at")


@dataclass(frozen=True, slots=True)
class ScoredClip:
    """What a clip's verdict said: which model version, for which language, how sure, the
    threshold it was flagged at, and when (ISO 8601 UTC)."""

    model: str
    version: str
    language: str
    score: float
    threshold: float
    scored_at: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ScoredClip | None:
        """None for a row without a threshold or a time: its flag cannot be judged."""
        if row["threshold"] is None or row["scored_at"] is None:
            return None
        return cls(row["model"], row["model_version"], row["language"], row["score"],
                   row["threshold"], row["scored_at"])


@dataclass(frozen=True, slots=True)
class DecidedClip:
    clip_id: str
    scored: ScoredClip
    positive: bool  # the moderator discarded it


class ScoredClips:
    """``audio_verdicts`` and ``review_decisions``, read only."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def of(self, clip_ids: Sequence[str]) -> dict[str, ScoredClip]:
        """The scored clips among ``clip_ids``."""
        if not clip_ids:
            return {}
        rows = await select(self.store, "audio_verdicts",
                            f"WHERE clip_id IN ({placeholders(clip_ids)})", clip_ids)
        return {row["clip_id"]: scored for row in rows
                if (scored := ScoredClip.from_row(row)) is not None}

    async def recorded(self, clip_ids: Sequence[str]) -> dict[str, str]:
        """When the decision recorded for each of ``clip_ids`` was made, where one is."""
        if not clip_ids:
            return {}
        rows = await select(self.store, "review_decisions",
                            f"WHERE kind = 'clip' AND item_id IN ({placeholders(clip_ids)})",
                            clip_ids)
        return {row["item_id"]: row["decided_at"] for row in rows}

    async def decided(self, limit: int, *, until: str) -> list[DecidedClip]:
        """The latest ``limit`` decisions made after their clip was scored and no later than
        ``until`` (ISO 8601), oldest first."""
        rows = await self.store.fetch_all(
            f"SELECT {', '.join(f'v.{column}' for column in COLUMNS)}, d.decision "
            "FROM review_decisions d JOIN audio_verdicts v ON v.clip_id = d.item_id "
            "WHERE d.kind = 'clip' AND d.decided_at >= v.scored_at AND d.decided_at <= ? "
            "ORDER BY d.decided_at DESC LIMIT ?", [until, limit])
        decided = []
        for *values, decision in reversed(rows):
            row = dict(zip(COLUMNS, values, strict=True))
            scored = ScoredClip.from_row(row)
            if scored is not None:
                decided.append(DecidedClip(row["clip_id"], scored, decision == "discard"))
        return decided
