"""Shadow scoring: the candidate scores a clip beside its live verdict, for the record only.

A shadow request is started after the clip's verdict exists and is never awaited by it, so
it can neither delay nor fail a verdict. It has its own client (own connections, no
retries) and its own time budget; at most ``rollout.shadow_max_in_flight`` run at once and
any more are dropped before they start, so under load shadow work goes first. Drops are
counted in ``vigil_shadow_dropped_total{reason}``: ``full`` (no room), ``store`` (the
``shadow_verdicts`` row could not be written). A candidate's failure is no drop: it is the
error-rate gate's figure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from orchestrator.catalogue import ModelEntry
from orchestrator.clock import iso_utc
from orchestrator.db import Store, upsert
from orchestrator.errors import MediaTooLarge, UndecodableMedia, VigilError
from orchestrator.metrics import Metrics, labelled
from orchestrator.rollouts.control import DROP_REASONS, RolloutControl
from orchestrator.rollouts.gates import Scored
from orchestrator.rollouts.table import Rollout
from orchestrator.serving import TorchServeClient

T = TypeVar("T")
REFUSED = (UndecodableMedia, MediaTooLarge)  # the input's fault, not the candidate's
FULL, STORE = DROP_REASONS


@dataclass(frozen=True, slots=True)
class ShadowRequest:
    clip_id: str
    rollout: Rollout
    candidate: ModelEntry
    body: bytes
    live: Scored


class CandidateRequests:
    """Requests to a candidate version through the candidates' own client (one attempt,
    the shadow timeout): the one place a candidate's outcomes reach the rollout's gates."""

    def __init__(self, client: TorchServeClient, control: RolloutControl) -> None:
        self.client = client
        self.control = control

    async def predict(self, rollout: Rollout, candidate: ModelEntry, body: bytes,
                      check: Callable[[Any], T], *, live: Scored | None = None) -> T:
        """The candidate's answer through ``check`` (which raises
        :class:`~orchestrator.errors.BadModelResponse` for an answer that is no score). The
        outcome goes to the gates once: a failure or a bad answer as failed, an answer in
        shadow paired with the clip's ``live`` verdict; an input the handler refused is
        the input's fault and is not counted. Raises the error."""
        started = time.monotonic()
        try:
            result = check(await self.client.predict(candidate, body))
        except REFUSED:
            raise
        except VigilError:
            self.control.record(rollout, _ms_since(started), failed=True)
            raise
        pair = (live, result) if live is not None else None
        self.control.record(rollout, _ms_since(started), pair=pair)
        return result


def _ms_since(started: float) -> float:
    return (time.monotonic() - started) * 1000


class Shadow:
    """Shadow requests in the background: bounded, dropped when full, never awaited."""

    def __init__(self, requests: CandidateRequests, store: Store, limit: int,
                 metrics: Metrics, to_scored: Callable[[ModelEntry, Any], Scored]) -> None:
        self.requests = requests
        self.store = store
        self.limit = limit
        self.to_scored = to_scored  # raises BadModelResponse for an answer that is no score
        self._dropped = labelled(metrics.shadow_dropped)
        self._tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> Shadow:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Nothing waits on a shadow result: what is still running is cancelled, not drained.
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def submit(self, request: ShadowRequest) -> None:
        """Start ``request`` now, or drop it when ``limit`` are running."""
        if len(self._tasks) >= self.limit:
            self._dropped(*request.rollout.key, FULL).inc()
            return
        task = asyncio.create_task(self._run(request), name="shadow")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, request: ShadowRequest) -> None:
        try:
            scored = await self.requests.predict(
                request.rollout, request.candidate, request.body,
                partial(self.to_scored, request.candidate), live=request.live)
        except VigilError:  # counted by the gates, or refused input
            return
        row = {"clip_id": request.clip_id, "model": request.candidate.name,
               "version": request.candidate.version, "score": scored.score,
               "label": scored.label, "scored_at": iso_utc()}
        try:
            await upsert(self.store, "shadow_verdicts", [row])
        except VigilError:
            self._dropped(*request.rollout.key, STORE).inc()
