"""Result stores: SQLite (default) and PostgreSQL, both async, both upserting by id.

Upserts keyed by the id make redelivery harmless: a re-scored clip replaces its row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlparse

AUDIO_VERDICT_COLUMNS = ("clip_id", "stream_id", "language", "model", "model_version", "score",
                         "label", "threshold", "scored_at")

SCHEMA = """
CREATE TABLE IF NOT EXISTS audio_verdicts (
    clip_id TEXT PRIMARY KEY, stream_id TEXT, language TEXT, model TEXT, model_version TEXT,
    score DOUBLE PRECISION, label TEXT, threshold DOUBLE PRECISION, scored_at TEXT
)
"""


class StoreError(RuntimeError):
    """The database refused or failed a write; the message names the operation."""


class VerdictStore(Protocol):
    """Writes audio verdicts. Used as an async context manager."""

    async def upsert_audio_verdicts(self, rows: Sequence[dict[str, Any]]) -> None: ...

    async def __aenter__(self) -> VerdictStore: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


def _upsert_sql(table: str, columns: Sequence[str], key: str, placeholder: str) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    marks = ", ".join([placeholder] * len(columns))
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates}")


def _values(rows: Sequence[dict[str, Any]]) -> list[tuple]:
    return [tuple(row.get(c) for c in AUDIO_VERDICT_COLUMNS) for row in rows]


class SqliteStore:
    """One aiosqlite connection in WAL mode; writes are serialised by SQLite anyway."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._sql = _upsert_sql("audio_verdicts", AUDIO_VERDICT_COLUMNS, "clip_id", "?")

    async def __aenter__(self) -> SqliteStore:
        import aiosqlite

        self._connection = await aiosqlite.connect(self.path)
        await self._connection.execute("PRAGMA journal_mode=WAL")
        await self._connection.execute("PRAGMA synchronous=NORMAL")
        await self._connection.executescript(SCHEMA)
        await self._connection.commit()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._connection.close()

    async def upsert_audio_verdicts(self, rows: Sequence[dict[str, Any]]) -> None:
        import sqlite3

        try:
            await self._connection.executemany(self._sql, _values(rows))
            await self._connection.commit()
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite upsert of {len(rows)} verdicts failed: {exc}") from exc


class PostgresStore:
    """A small pool of psycopg async connections (autocommit; one transaction per upsert)."""

    def __init__(self, url: str, pool_size: int = 4) -> None:
        self.url = url
        self.pool_size = pool_size
        self._sql = _upsert_sql("audio_verdicts", AUDIO_VERDICT_COLUMNS, "clip_id", "%s")

    async def __aenter__(self) -> PostgresStore:
        import psycopg

        self._pool: asyncio.Queue = asyncio.Queue()
        for _ in range(self.pool_size):
            self._pool.put_nowait(await psycopg.AsyncConnection.connect(self.url, autocommit=True))
        connection = await self._pool.get()
        await connection.execute(SCHEMA)
        self._pool.put_nowait(connection)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        while not self._pool.empty():
            await self._pool.get_nowait().close()

    async def upsert_audio_verdicts(self, rows: Sequence[dict[str, Any]]) -> None:
        import psycopg

        connection = await self._pool.get()
        try:
            async with connection.transaction():
                async with connection.cursor() as cursor:
                    await cursor.executemany(self._sql, _values(rows))
        except psycopg.Error as exc:
            raise StoreError(f"postgres upsert of {len(rows)} verdicts failed: {exc}") from exc
        finally:
            self._pool.put_nowait(connection)


def open_store(url: str) -> VerdictStore:
    """The store for ``url``: ``sqlite:///path`` or ``postgresql://...``."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        return SqliteStore(url.removeprefix("sqlite:///") or "vigil.db")
    if scheme in ("postgresql", "postgres"):
        return PostgresStore(url)
    raise ValueError(f"unsupported DATABASE_URL scheme {scheme!r}: use sqlite:/// or postgresql://")
