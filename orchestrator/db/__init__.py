"""The database: each table declared once (one schema for SQLite and PostgreSQL), the
:class:`Store` interface, and the sink that upserts results by primary key."""

from orchestrator.db.schema import TABLES
from orchestrator.db.stores import Store, open_store, placeholders, select, upsert
from orchestrator.db.table_sink import TableSink

__all__ = ["Store", "TABLES", "TableSink", "open_store", "placeholders", "select", "upsert"]
