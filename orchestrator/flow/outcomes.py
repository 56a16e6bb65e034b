"""The batch contract: a scorer (:class:`~orchestrator.flow.seams.Scorer`) gives back exactly
one outcome per item, a result or a
:class:`Failure`, so routing to the sinks and to the dead-letter topic is one function over
that list (the shape of Ray Serve's batching: one answer per caller, lengths checked)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an item got no result; it becomes the item's dead letter."""

    error: BaseException


Outcome = R | Failure


async def gather_outcomes(awaitables: Iterable[Awaitable[R]]) -> list[R | Failure]:
    """Await all concurrently; each one's exception becomes its :class:`Failure`."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    outcomes: list[R | Failure] = []
    for result in results:
        if isinstance(result, Exception):
            outcomes.append(Failure(result))
        elif isinstance(result, BaseException):  # cancellation, interpreter exit: not ours
            raise result
        else:
            outcomes.append(result)
    return outcomes


def one_per_item(items: Sequence[T], outcomes: Sequence[R | Failure]) -> list[R | Failure]:
    """``outcomes`` as a list, after checking there is one per item."""
    if len(outcomes) != len(items):
        raise RuntimeError(f"scorer gave {len(outcomes)} outcomes for {len(items)} items")
    return list(outcomes)
