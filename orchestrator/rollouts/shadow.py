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
from typing import Any

from orchestrator.catalogue import ModelEntry
from orchestrator.clock import iso_utc
from orchestrator.db import Store, upsert
from orchestrator.errors import MediaTooLarge, UndecodableMedia, VigilError
from orchestrator.metrics import Metrics, labelled
from orchestrator.rollouts.control import DROP_REASONS, RolloutControl
from orchestrator.rollouts.gates import Scored
from orchestrator.rollouts.table import Rollout
from orchestrator.serving import TorchServeClient

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
    the shadow timeout), timed and reported to the rollout's gates."""

    def __init__(self, client: TorchServeClient, control: RolloutControl) -> None:
        self.client = client
        self.control = control

    async def predict(self, rollout: Rollout, candidate: ModelEntry,
                      body: bytes) -> tuple[Any, float]:
        """The candidate's answer and its latency in ms; raises its error (reported to the
        gates unless the input was refused)."""
        started = time.monotonic()
        try:
            answer = await self.client.predict(candidate, body)
        except REFUSED:
            raise
        except VigilError:
            self.control.requested(rollout, _ms_since(started), failed=True)
            raise
        return answer, _ms_since(started)


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
            answer, latency_ms = await self.requests.predict(request.rollout, request.candidate,
                                                            request.body)
        except (VigilError, TimeoutError):  # counted by the gates, or refused input
            return
        try:
            scored = self.to_scored(request.candidate, answer)
        except VigilError:  # an answer that is no score: the candidate's failure
            self.requests.control.requested(request.rollout, latency_ms, failed=True)
            return
        self.requests.control.paired(request.rollout, request.live, scored, latency_ms)
        row = {"clip_id": request.clip_id, "model": request.candidate.name,
               "version": request.candidate.version, "score": scored.score,
               "label": scored.label, "scored_at": iso_utc()}
        try:
            await upsert(self.store, "shadow_verdicts", [row])
        except VigilError:
            self._dropped(*request.rollout.key, STORE).inc()
