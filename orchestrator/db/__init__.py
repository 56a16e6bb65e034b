"""The database: one schema for SQLite and PostgreSQL, the :class:`Store` interface, and the
sink that upserts results by primary key."""

from orchestrator.db.stores import ROLLOUT_COLUMNS, TABLES, Store, open_store, upsert
from orchestrator.db.table_sink import TableSink

__all__ = ["ROLLOUT_COLUMNS", "Store", "TABLES", "TableSink", "open_store", "upsert"]
