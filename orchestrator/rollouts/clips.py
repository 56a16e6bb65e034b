"""A clip under a rollout, from its plan to its candidate's outcome at the gates.

:class:`ClipVersions` is what a scorer calls: the plan (the view's), the verdict's answer
(the candidate's for a canary stream, live's should it fail: a failing candidate never fails
a verdict), and afterwards the shadow request. Every candidate request goes through
:class:`CandidateRequests`, the one place its outcome reaches the gates
(:meth:`~orchestrator.rollouts.control.RolloutControl.record`).

A shadow request is started after the clip's verdict exists and is never awaited by it, so
it can neither delay nor fail a verdict. It has its own client (own connections, one
attempt) and its own time budget; at most ``rollout.shadow_max_in_flight`` run at once and
any more are dropped before they start, so under load shadow work goes first. Drops are
counted in ``vigil_shadow_dropped_total{reason}``: ``full`` (no room), ``store`` (the
``shadow_verdicts`` row could not be written). A candidate's failure is no drop: it is the
error-rate gate's figure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from orchestrator.catalogue import ModelEntry
from orchestrator.clock import iso_utc, ms_since
from orchestrator.db import Store, upsert
from orchestrator.errors import MediaTooLarge, UndecodableMedia, VigilError
from orchestrator.flow import BackgroundTasks
from orchestrator.messages import ClipMessage
from orchestrator.metrics import Metrics, labelled
from orchestrator.rollouts.control import DROP_REASONS, RolloutControl
from orchestrator.rollouts.gates import Scored
from orchestrator.rollouts.table import Rollout
from orchestrator.rollouts.view import Plan, RolloutView
from orchestrator.serving import TorchServeClient

T = TypeVar("T")
Check = Callable[[ModelEntry, Any], T]  # a model's answer → a result; raises BadModelResponse
REFUSED = (UndecodableMedia, MediaTooLarge)  # the input's fault, not the candidate's
FULL, STORE = DROP_REASONS
logger = logging.getLogger(__name__)


class CandidateRequests:
    """Requests to a candidate version through a candidates' client (one attempt, the
    shadow timeout): the one place a candidate's outcomes reach the rollout's gates."""

    def __init__(self, client: TorchServeClient, control: RolloutControl) -> None:
        self.client = client
        self.control = control

    async def predict(self, rollout: Rollout, stream_id: str, candidate: ModelEntry,
                      body: bytes, check: Check[T], *, live: Scored | None = None,
                      live_ms: float | None = None) -> T:
        """The candidate's answer through ``check``. The outcome goes to the gates once: a
        failure or a bad answer as failed, an answer in shadow paired with the clip's
        ``live`` verdict (and its request's ``live_ms``); an input the handler refused is
        the input's fault and is not counted. Raises the error."""
        started = time.monotonic()
        try:
            result = check(candidate, await self.client.predict(candidate, body))
        except REFUSED:
            raise
        except VigilError:
            self.control.record(rollout, stream_id, ms_since(started), failed=True)
            raise
        pair = (live, result) if live is not None else None
        self.control.record(rollout, stream_id, ms_since(started), pair=pair, live_ms=live_ms)
        return result



@dataclass(frozen=True, slots=True)
class ShadowRequest:
    clip_id: str
    stream_id: str
    rollout: Rollout
    candidate: ModelEntry
    body: bytes
    live: Scored
    live_ms: float | None  # how long the live request that gave the verdict took


class Shadow:
    """Shadow requests in the background: bounded, dropped when full, never awaited."""

    def __init__(self, requests: CandidateRequests, store: Store, limit: int,
                 metrics: Metrics, to_scored: Check[Scored]) -> None:
        self.requests = requests
        self.store = store
        self.to_scored = to_scored
        self._dropped = labelled(metrics.shadow_dropped)
        # Nothing waits on a shadow result: on stop, what is still running is cancelled.
        self._tasks = BackgroundTasks(limit, drain_timeout_s=0)

    async def __aenter__(self) -> Shadow:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._tasks.wait_and_close(0)

    def submit(self, request: ShadowRequest) -> None:
        """Start ``request`` now, or drop it when ``limit`` are running."""
        if not self._tasks.try_spawn(self._run(request), "shadow"):
            self._dropped(*request.rollout.key, FULL).inc()

    async def _run(self, request: ShadowRequest) -> None:
        try:
            scored = await self.requests.predict(request.rollout, request.stream_id,
                                                 request.candidate, request.body,
                                                 self.to_scored, live=request.live,
                                                 live_ms=request.live_ms)
        except VigilError:  # counted by the gates, or refused input
            return
        row = {"clip_id": request.clip_id, "model": request.candidate.name,
               "version": request.candidate.version, "score": scored.score,
               "label": scored.label, "scored_at": iso_utc()}
        try:
            await upsert(self.store, "shadow_verdicts", [row])
        except VigilError:
            self._dropped(*request.rollout.key, STORE).inc()


class ClipVersions:
    """The versions a clip meets, behind two calls: :meth:`predict` for its verdict's
    answer and :meth:`shadow` once the verdict exists."""

    def __init__(self, view: RolloutView, live: TorchServeClient, canary: CandidateRequests,
                 shadow: Shadow) -> None:
        self.view = view
        self.live = live
        self.canary = canary
        self._shadow = shadow

    def plan(self, clip: ClipMessage) -> Plan:
        return self.view.plan(clip)

    async def predict(self, clip: ClipMessage, plan: Plan, body: bytes, check: Check[T]) -> T:
        """The answer that gives ``clip`` its verdict, through ``check``: the candidate's
        for a canary stream, live's otherwise or should the candidate fail."""
        if plan.on_candidate:
            try:
                return await self.canary.predict(plan.rollout, clip.stream_id, plan.serve, body,
                                                 check)
            except Exception:  # noqa: BLE001 - the candidate's failure is the gates' figure
                logger.debug("canary %s %s failed on %s: live scores it", plan.serve.name,
                             plan.serve.version, clip.clip_id, exc_info=True)
        return check(plan.fallback, await self.live.predict(plan.fallback, body))

    def shadow(self, clip: ClipMessage, plan: Plan, body: bytes, verdict: Scored,
               live_ms: float | None) -> None:
        """After ``clip``'s verdict (its live request took ``live_ms``): the candidate also
        scores it, where sampled."""
        if plan.shadow is not None:
            self._shadow.submit(ShadowRequest(clip.clip_id, clip.stream_id, plan.rollout,
                                              plan.shadow, body, verdict, live_ms))
