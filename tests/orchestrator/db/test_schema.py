"""Each table is declared once: the DDL both databases run, upserts and reads by name all
come from that declaration."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3

import pytest

from orchestrator.db import TABLES, select, upsert
from orchestrator.db.schema import INDEXES, SCHEMA
from orchestrator.db.stores import SqliteStore
from orchestrator.rollouts import Rollout


def test_every_declared_table_is_created_with_exactly_its_columns_and_key():
    with sqlite3.connect(":memory:") as db:
        db.executescript(SCHEMA + INDEXES)
        for table in TABLES.values():
            info = db.execute(f"PRAGMA table_info({table.name})").fetchall()
            assert tuple(row[1] for row in info) == table.columns, table.name
            key = tuple(row[1] for row in sorted(info, key=lambda r: r[5]) if row[5])
            assert key == table.key, table.name


def test_checks_written_once_still_refuse_a_score_out_of_range():
    with sqlite3.connect(":memory:") as db:
        db.executescript(SCHEMA)
        for score in (1.5, None):
            with pytest.raises(sqlite3.IntegrityError):
                db.execute("INSERT INTO audio_verdicts (clip_id, score, label) VALUES (?, ?, ?)",
                           ("c", score, "safe"))


def test_a_rollout_is_a_model_rollouts_row():
    assert tuple(f.name for f in dataclasses.fields(Rollout)) == \
        TABLES["model_rollouts"].columns == TABLES["model_rollout_history"].columns


def test_rows_are_read_back_by_column_name(tmp_path):
    async def main() -> list[dict]:
        async with SqliteStore(str(tmp_path / "v.db")) as store:
            await upsert(store, "posts", [{"created_at": "2026-01-01T00:00:00Z",
                                           "user_id": "u1", "post_id": "p1"}])
            return await select(store, "posts", "WHERE post_id IN (?)", ["p1"])

    assert asyncio.run(main()) == [{"post_id": "p1", "user_id": "u1",
                                    "created_at": "2026-01-01T00:00:00Z", "caption": None,
                                    "media_url": None}]
