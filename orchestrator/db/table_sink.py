"""The database sink: one row per result, upserted by the table's primary key (or, with
``newest``, kept only while no newer row by that column arrives)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from orchestrator.db.stores import Store, upsert

R = TypeVar("R")


class TableSink(Generic[R]):
    """Upserts one row per result into ``table``, keyed by its primary key."""

    def __init__(self, store: Store, table: str, row: Callable[[R], dict[str, Any]], *,
                 newest: str | None = None) -> None:
        self.store = store
        self.table = table
        self.row = row
        self.newest = newest

    async def write(self, results: Sequence[R]) -> None:
        await upsert(self.store, self.table, [self.row(result) for result in results],
                     newest=self.newest)
