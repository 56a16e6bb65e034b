"""The database: SQLite (default) and PostgreSQL behind one small async interface.

SQL is written once with ``?`` placeholders; the PostgreSQL store translates them. Upserts
keyed by the id make redelivery harmless: a re-scored clip or post replaces its row.
Timestamps are stored as ISO 8601 UTC text with a ``Z`` (see :mod:`orchestrator.clock`), so
they sort and compare the same way in both databases. The drivers' errors are translated
here: an unreachable or busy database is :class:`~orchestrator.errors.StoreUnavailable`
(retried, intake paused), a refused statement is :class:`~orchestrator.errors.StoreError`.
The tables are declared in :mod:`orchestrator.db.schema`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlparse

from orchestrator.db.schema import INDEXES, SCHEMA, TABLES, missing_columns
from orchestrator.errors import ConfigError, StoreError, StoreUnavailable


class Store(Protocol):
    """An open database. Used as an async context manager."""

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run ``sql`` once per row in one transaction."""

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """The rows ``sql`` selects."""

    async def __aenter__(self) -> Store: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


def upsert_sql(table: str, *, keep_existing: bool = False, newest: str | None = None) -> str:
    """INSERT ... ON CONFLICT for ``table``: replace the row, keep the first one, or
    replace it only with a row whose ``newest`` column is greater."""
    spec = TABLES[table]
    marks = ", ".join("?" * len(spec.columns))
    updates = ", ".join(f"{c} = excluded.{c}" for c in spec.columns if c not in spec.key)
    action = "DO NOTHING" if keep_existing else f"DO UPDATE SET {updates}"
    if newest is not None:
        action += f" WHERE excluded.{newest} > {table}.{newest}"
    return (f"INSERT INTO {table} ({', '.join(spec.columns)}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(spec.key)}) {action}")


async def upsert(store: Store, table: str, rows: Sequence[dict[str, Any]], *,
                 keep_existing: bool = False, newest: str | None = None) -> None:
    """Write ``rows`` (dicts with the table's columns) keyed by the table's primary key:
    replacing what is there, or with ``keep_existing`` keeping it, or with ``newest`` (a
    column) replacing it only with a row that is newer by that column."""
    columns = TABLES[table].columns
    await store.execute_many(upsert_sql(table, keep_existing=keep_existing, newest=newest),
                             [tuple(row.get(c) for c in columns) for row in rows])


async def select(store: Store, table: str, where: str = "", params: Sequence[Any] = ()
                 ) -> list[dict[str, Any]]:
    """The rows of ``table`` (``where`` and anything after it, with ``?`` placeholders), as
    dicts keyed by column."""
    spec = TABLES[table]
    rows = await store.fetch_all(f"SELECT {', '.join(spec.columns)} FROM {table} {where}",
                                 params)
    return spec.named(rows)


def placeholders(values: Sequence[Any]) -> str:
    """``?, ?, ?`` for an ``IN (...)`` of ``values``."""
    return ", ".join("?" * len(values))


class SqliteStore:
    """One aiosqlite connection in WAL mode; writes are serialised by SQLite anyway."""

    def __init__(self, path: str) -> None:
        self.path = path

    async def __aenter__(self) -> SqliteStore:
        import aiosqlite

        self._connection = await aiosqlite.connect(self.path)
        await self._connection.execute("PRAGMA journal_mode=WAL")
        await self._connection.execute("PRAGMA synchronous=NORMAL")
        await self._connection.executescript(SCHEMA)
        for table in TABLES.values():
            async with self._connection.execute(f"PRAGMA table_info({table.name})") as cursor:
                present = [row[1] for row in await cursor.fetchall()]
            for statement in missing_columns(table, present):
                await self._connection.execute(statement)
        await self._connection.executescript(INDEXES)
        await self._connection.commit()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._connection.close()

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        import sqlite3

        try:
            await self._connection.executemany(sql, rows)
            await self._connection.commit()
        except sqlite3.Error as exc:
            await self._connection.rollback()
            raise _sqlite_error(exc, f"{_statement(sql)} of {len(rows)} rows") from exc

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        import sqlite3

        try:
            async with self._connection.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.Error as exc:
            raise _sqlite_error(exc, "query") from exc


def _statement(sql: str) -> str:
    return sql.split("(")[0].strip()


def _sqlite_error(exc: Exception, what: str) -> StoreError | StoreUnavailable:
    import sqlite3

    # OperationalError is SQLite's "could not do it now": locked, busy, disk I/O.
    kind = StoreUnavailable if isinstance(exc, sqlite3.OperationalError) else StoreError
    return kind(f"sqlite: {what} failed: {exc}")


class PostgresStore:
    """A psycopg connection pool (autocommit; one transaction per call).

    The pool checks each connection before handing it out, so after the server restarts
    the broken ones are replaced instead of failing every call.
    """

    def __init__(self, url: str, *, pool_size: int = 4, connect_timeout_s: float = 5.0,
                 open_timeout_s: float = 30.0) -> None:
        self.url = url
        self.pool_size = pool_size
        self.connect_timeout_s = connect_timeout_s
        self.open_timeout_s = open_timeout_s

    async def __aenter__(self) -> PostgresStore:
        import psycopg
        from psycopg_pool import AsyncConnectionPool

        self._pool = AsyncConnectionPool(
            self.url, min_size=1, max_size=self.pool_size, open=False,
            timeout=self.connect_timeout_s, check=AsyncConnectionPool.check_connection,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(self.connect_timeout_s))})
        try:
            await self._pool.open(wait=True, timeout=self.open_timeout_s)
            async with self._pool.connection() as connection:
                await connection.execute(SCHEMA)
                for table in TABLES.values():
                    cursor = await connection.execute(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_schema = current_schema() AND table_name = %s",
                        (table.name,))
                    present = [row[0] for row in await cursor.fetchall()]
                    for statement in missing_columns(table, present):
                        # Replicas may start together: the second must not fail.
                        await connection.execute(statement.replace(
                            "ADD COLUMN", "ADD COLUMN IF NOT EXISTS"))
                await connection.execute(INDEXES)
        except psycopg.Error as exc:
            await self._pool.close()
            raise _postgres_error(exc, "opening the database") from exc
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._pool.close()

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        import psycopg

        try:
            async with self._pool.connection() as connection:
                async with connection.transaction(), connection.cursor() as cursor:
                    await cursor.executemany(sql.replace("?", "%s"), rows)
        except psycopg.Error as exc:
            raise _postgres_error(exc, f"{_statement(sql)} of {len(rows)} rows") from exc

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        import psycopg

        try:
            async with self._pool.connection() as connection, connection.cursor() as cursor:
                await cursor.execute(sql.replace("?", "%s"), params)
                return list(await cursor.fetchall())
        except psycopg.Error as exc:
            raise _postgres_error(exc, "query") from exc


def _postgres_error(exc: Exception, what: str) -> StoreError | StoreUnavailable:
    import psycopg

    # OperationalError covers a refused or lost connection, the pool's timeout, a server
    # shutting down, deadlocks and serialisation failures: all worth another try.
    transient = isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
    return (StoreUnavailable if transient else StoreError)(f"postgres: {what} failed: {exc}")


def open_store(url: str) -> Store:
    """The store for ``url``: ``sqlite:///path`` or ``postgresql://...``."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        return SqliteStore(url.removeprefix("sqlite:///") or "vigil.db")
    if scheme in ("postgresql", "postgres"):
        return PostgresStore(url)
    raise ConfigError(f"unsupported DATABASE_URL scheme {scheme!r}: use sqlite:/// or "
                      "postgresql://")
