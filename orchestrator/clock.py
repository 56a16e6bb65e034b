"""Time as Vigil writes it: ISO 8601 UTC with milliseconds and a ``Z``, so timestamps sort
and compare the same way as text in SQLite, PostgreSQL and the topics; and durations, in
milliseconds of the monotonic clock."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def iso_utc(moment: datetime | None = None) -> str:
    """``moment`` (default now) as ISO 8601 UTC with milliseconds and a ``Z``."""
    moment = moment or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def iso_from_epoch(seconds: float) -> str:
    """Epoch ``seconds`` as :func:`iso_utc` text."""
    return iso_utc(datetime.fromtimestamp(seconds, timezone.utc))


def parse_iso(stamp: str) -> float:
    """An ISO 8601 timestamp as epoch seconds (UTC when it names no zone).

    Raises ValueError when ``stamp`` is not ISO 8601.
    """
    parsed = datetime.fromisoformat(stamp)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def ms_since(started: float) -> float:
    """Milliseconds since ``started``, a :func:`time.monotonic` reading."""
    return (time.monotonic() - started) * 1000
