"""The flow's two seams: a :class:`Scorer` turns a batch of items into one outcome each, and
a :class:`Sink` makes a batch's results durable. Pipelines plug services in through them;
the flow itself imports no service client."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from orchestrator.flow.outcomes import Failure

T_contra = TypeVar("T_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)
R_contra = TypeVar("R_contra", contravariant=True)


class Scorer(Protocol[T_contra, R_co]):
    """One stage of a flow: scores a batch of items."""

    async def score(self, items: Sequence[T_contra]) -> list[R_co | Failure]:
        """Exactly one outcome per item, in order; an item's own error is its Failure."""


class Sink(Protocol[R_contra]):
    """Writes a batch's results; returns once they are durable.

    The flow may call :meth:`write` again with the same results, or a subset of them (after
    a transient error, and result by result after a refusal): a sink must be idempotent,
    so that a second call leaves what a first one did (a table holds one row per key; a
    topic gets the same events again, same keys, which readers dedupe as they do any
    at-least-once delivery), and state it keeps in memory changes only once its write has
    succeeded. Writes of different batches run at once (side effects are concurrent)."""

    async def write(self, results: Sequence[R_contra]) -> None:
        """Raise when any of ``results`` could not be written."""
