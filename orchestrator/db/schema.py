"""Vigil's tables, each declared once: columns with their SQL types and checks, the key that
makes writes upserts, and indexes. The DDL both databases run is generated from these.
Tables only ever gain columns, nullable ones, at the end: a store opening an older database
adds what it lacks (:func:`missing_columns`), so no migration tool is needed.

Scores are finite and in [0, 1]: the daemons check every model answer, and CHECK
constraints refuse anything else (NULL, NaN, ±Inf; SQLite stores NaN as NULL, hence NOT NULL
where a score is required). Timestamps are ISO 8601 UTC text (:mod:`orchestrator.clock`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TEXT = "TEXT"
REQUIRED_TEXT = "TEXT NOT NULL"
SHARE = "DOUBLE PRECISION CHECK ({column} >= 0 AND {column} <= 1)"
REQUIRED_SHARE = "DOUBLE PRECISION NOT NULL CHECK ({column} >= 0 AND {column} <= 1)"


def one_of(*values: str) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"TEXT NOT NULL CHECK ({{column}} IN ({quoted}))"


@dataclass(frozen=True)
class Table:
    """A table: ``spec`` maps each column to its SQL type and constraints (``{column}``
    stands for the column's name), ``key`` is the primary key upserts are keyed by."""

    name: str
    spec: Mapping[str, str]
    key: tuple[str, ...] = ()
    indexes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.spec)

    def ddl(self) -> str:
        """The ``CREATE TABLE`` statement, idempotent."""
        lines = [f"{column} {kind.format(column=column)}" for column, kind in self.spec.items()]
        if self.key:
            lines.append(f"PRIMARY KEY ({', '.join(self.key)})")
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n    " + ",\n    ".join(lines) + "\n);"

    def index_ddl(self) -> str:
        """The ``CREATE INDEX`` statements, idempotent (run after :func:`missing_columns`:
        an index may be on a column an older database gains there)."""
        return "\n".join(f"CREATE INDEX IF NOT EXISTS {index} ON {self.name} ({', '.join(on)});"
                         for index, on in self.indexes.items())

    def named(self, rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """Rows selected as ``SELECT <columns>`` as dicts keyed by column."""
        return [dict(zip(self.columns, row, strict=True)) for row in rows]


ROLLOUT = {
    "model": REQUIRED_TEXT, "language": REQUIRED_TEXT, "live_version": REQUIRED_TEXT,
    "candidate_version": REQUIRED_TEXT, "mode": one_of("shadow", "canary", "live"),
    # state is not CHECKed here, so a later state needs no table change (the daemons skip
    # a row whose state they do not know); see OPERATIONS.md, "Upgrading", for older
    # databases.
    "fraction": REQUIRED_SHARE, "state": REQUIRED_TEXT,
    "reason": REQUIRED_TEXT, "updated_at": REQUIRED_TEXT, "revision": "INTEGER NOT NULL",
    # The rollout's secret for assigning streams and clips (orchestrator.rollouts.table).
    "assignment_key": TEXT,
}

_TABLES = (
    Table("audio_verdicts", {
        "clip_id": TEXT, "stream_id": TEXT, "language": TEXT, "model": TEXT,
        "model_version": TEXT, "score": REQUIRED_SHARE, "label": REQUIRED_TEXT,
        "threshold": SHARE, "scored_at": TEXT}, ("clip_id",)),
    Table("post_scores", {
        "post_id": TEXT, "user_id": TEXT, "score": REQUIRED_SHARE, "top_category": TEXT,
        "categories": TEXT, "model_version": TEXT, "created_at": TEXT, "scored_at": TEXT},
        ("post_id",), {"post_scores_time": ("created_at",)}),
    # caption and media_url (added later, nullable) are for the review tool's item page.
    Table("posts", {"post_id": TEXT, "user_id": REQUIRED_TEXT, "created_at": REQUIRED_TEXT,
                    "caption": TEXT, "media_url": TEXT},
          ("post_id",), {"posts_user": ("user_id", "created_at")}),
    # Written by the moderation tool, read for users' history; never upserted.
    Table("moderation_decisions", {
        "post_id": REQUIRED_TEXT, "user_id": REQUIRED_TEXT, "decision": REQUIRED_TEXT,
        "decided_at": REQUIRED_TEXT}, (), {"decisions_user": ("user_id", "decided_at")}),
    Table("review_queue", {
        "post_id": REQUIRED_TEXT, "net": "INTEGER NOT NULL", "score": SHARE, "risk": SHARE,
        "reason": TEXT, "enqueued_at": TEXT}, ("post_id", "net"),
        {"review_queue_time": ("enqueued_at",)}),
    # Not in DESIGN's list: the triage's memory of what it decided per post and net (skips
    # too), so a redelivered views event neither decides twice nor loses the review event.
    Table("triage_decisions", {
        "post_id": REQUIRED_TEXT, "net": "INTEGER NOT NULL", "decision": REQUIRED_TEXT,
        "score": SHARE, "risk": SHARE, "reason": TEXT, "decided_at": TEXT,
        "published": "INTEGER NOT NULL DEFAULT 0"}, ("post_id", "net")),
    # One row per item: the newest decision (upsert_newest on decided_at). moderator_id was
    # added later: nullable, so an older database gains it in place.
    Table("review_decisions", {
        "item_id": REQUIRED_TEXT, "kind": one_of("clip", "post"),
        "decision": one_of("discard", "keep"), "decided_at": REQUIRED_TEXT,
        "moderator_id": TEXT}, ("item_id", "kind")),
    # audit_recall*: the live threshold's recall estimated from the audit sample, with its
    # interval (added later: nullable).
    Table("threshold_proposals", {
        "model": REQUIRED_TEXT, "version": REQUIRED_TEXT, "language": REQUIRED_TEXT,
        "threshold": REQUIRED_SHARE, "target": REQUIRED_TEXT, "precision": SHARE,
        "recall": SHARE, "decisions": "INTEGER NOT NULL", "proposed_at": REQUIRED_TEXT,
        "audit_recall": SHARE, "audit_recall_lower": SHARE, "audit_recall_upper": SHARE},
        ("model", "version", "language", "proposed_at")),
    Table("shadow_verdicts", {
        "clip_id": REQUIRED_TEXT, "model": REQUIRED_TEXT, "version": REQUIRED_TEXT,
        "score": REQUIRED_SHARE, "label": REQUIRED_TEXT, "scored_at": REQUIRED_TEXT},
        ("clip_id", "model", "version")),
    # What goes to review for quality's estimates: every flagged clip (inclusion probability
    # 1) and the audit sample of the others (quality.audit_rate).
    Table("review_samples", {
        "item_id": REQUIRED_TEXT, "kind": one_of("clip", "post"), "model": REQUIRED_TEXT,
        "version": REQUIRED_TEXT, "language": REQUIRED_TEXT, "score": REQUIRED_SHARE,
        "threshold": REQUIRED_SHARE, "flagged": "INTEGER NOT NULL",
        "inclusion_probability": "DOUBLE PRECISION NOT NULL CHECK "
                                 "({column} > 0 AND {column} <= 1)",
        "sampled_at": REQUIRED_TEXT, "media_url": TEXT}, ("item_id", "kind"),
        {"review_samples_time": ("sampled_at",)}),
    # The review tool's: who works on an item until when, and decisions waiting out their
    # undo delay before they go to review.decisions (sent_at once they went).
    Table("review_claims", {
        "item_id": REQUIRED_TEXT, "kind": one_of("clip", "post"),
        "moderator_id": REQUIRED_TEXT, "claimed_at": REQUIRED_TEXT,
        "expires_at": REQUIRED_TEXT}, ("item_id", "kind")),
    Table("review_pending", {
        "item_id": REQUIRED_TEXT, "kind": one_of("clip", "post"),
        "moderator_id": REQUIRED_TEXT, "decision": one_of("discard", "keep"),
        "category": TEXT, "decided_at": REQUIRED_TEXT, "send_after": REQUIRED_TEXT,
        "sent_at": TEXT}, ("item_id", "kind", "moderator_id"),
        {"review_pending_due": ("sent_at", "send_after")}),
    # ``revision`` (not in DESIGN's list) counts the row's changes: a change is written only
    # over the revision it was decided on, so two daemons cannot both move one rollout.
    Table("model_rollouts", ROLLOUT, ("model", "language")),
    Table("model_rollout_history", ROLLOUT, ("model", "language", "revision")),
)
TABLES = {table.name: table for table in _TABLES}
SCHEMA = "\n".join(table.ddl() for table in _TABLES)
INDEXES = "\n".join(table.index_ddl() for table in _TABLES if table.indexes)


def missing_columns(table: Table, present: Sequence[str]) -> list[str]:
    """``ALTER TABLE`` statements adding the declared columns ``present`` lacks."""
    return [f"ALTER TABLE {table.name} ADD COLUMN {column} "
            f"{table.spec[column].format(column=column)}"
            for column in table.columns if column not in present]
