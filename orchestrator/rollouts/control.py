"""The write side of the rollouts: keep the view in step with the table, collect each step's
figures, judge them, and write a promotion or a rollback.

Every ``rollout.poll_s`` the daemon re-reads the rollouts of the models it routes to (so
``vigil rollout`` and other replicas are heard); each change of a rollout's row starts its
step's figures afresh. Every outcome of a candidate request comes back through
:meth:`RolloutControl.record` (its one caller is
:class:`~orchestrator.rollouts.clips.CandidateRequests`); after each, the step is judged
(:func:`orchestrator.rollouts.gates.judge`) and a promotion, a rollback or an inconclusive
hold is written at once.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial

from orchestrator.catalogue import Catalogue
from orchestrator.config import RolloutConfig
from orchestrator.errors import UnknownVersion, VigilError
from orchestrator.flow import BackgroundTasks, Periodic
from orchestrator.metrics import Metrics, labelled
from orchestrator.rollouts.gates import Decision, Judgement, Scored, StepStats, judge
from orchestrator.rollouts.table import Rollout, RolloutTable, State
from orchestrator.rollouts.view import Key, RolloutView
from orchestrator.serving import TorchServeClient

logger = logging.getLogger(__name__)
DROP_REASONS = ("full", "store")  # why a shadow request is dropped (orchestrator.rollouts.clips)


class RolloutControl:
    """Moves the routed models' rollouts on, from what their candidates do."""

    def __init__(self, table: RolloutTable, view: RolloutView, candidates: TorchServeClient,
                 config: RolloutConfig, metrics: Metrics) -> None:
        self.table = table
        self.view = view
        self.candidates = candidates
        self.config = config
        self._state = labelled(metrics.rollout_state)
        self._gate = labelled(metrics.rollout_gate)
        self._bound = labelled(metrics.rollout_gate_bound)
        self._inconclusive = labelled(metrics.rollout_inconclusive)
        self._flip_rate = labelled(metrics.shadow_flip_rate)
        self._rollbacks = labelled(metrics.rollbacks)
        self._dropped = labelled(metrics.shadow_dropped)
        self._stats: dict[Key, StepStats] = {}
        self._moving: set[Key] = set()
        self._decisions = BackgroundTasks(limit=64, drain_timeout_s=10.0)
        self._stack = contextlib.AsyncExitStack()

    @property
    def catalogue(self) -> Catalogue:
        return self.view.catalogue

    async def __aenter__(self) -> RolloutControl:
        await self.refresh()
        await self._stack.enter_async_context(Periodic(
            "rollout-poll", self.config.poll_s, self.refresh, on_error=_poll_failed))
        await self._stack.enter_async_context(self._decisions)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    async def adopt_candidates(self) -> None:
        """Start a rollout for each routed model whose catalogue names a candidate that was
        never rolled out for that language."""
        for live in self.view.routed.values():
            version = self.catalogue.candidates.get(live.name)
            if version is None:
                continue
            for language in live.languages:
                row = await self.table.get(live.name, language)
                if row is not None and (row.candidate_version == version or row.movable):
                    continue
                serving = row.serving_version if row else live.version
                if serving == version:
                    continue
                new = Rollout.begin(live.name, language, serving, version,
                                    "the catalogue's candidate", after=row)
                if await self.table.write(new, row):
                    logger.info("%s %s: rolling out %s over %s, in shadow", live.name,
                                language, version, serving)
        await self.refresh()

    async def refresh(self) -> None:
        """Re-read every rollout; a changed one starts its step afresh."""
        for rollout in await self.table.all():
            if self.view.is_new(rollout):
                await self._apply(rollout)

    async def _apply(self, rollout: Rollout) -> None:
        self._state(*rollout.key).set(rollout.step(self.config.canary_steps))
        self._inconclusive(*rollout.key).set(rollout.state == State.INCONCLUSIVE)
        # Counter series at 0 from the start, so rates and alerts see the first increase.
        self._rollbacks(*rollout.key)
        for reason in DROP_REASONS:
            self._dropped(*rollout.key, reason)
        logger.info("%s %s: live %s, candidate %s: %s %.0f%%, %s (%s)", *rollout.key,
                    rollout.live_version, rollout.candidate_version, rollout.mode,
                    rollout.fraction * 100, rollout.state, rollout.reason)
        problem = await self._unservable(rollout) if rollout.running else ""
        if problem:
            logger.warning("%s %s: this daemon sits the rollout of %s out, serving live "
                           "only: %s", *rollout.key, rollout.candidate_version, problem)
        self._stats[rollout.key] = StepStats(self.config.max_pairs_per_stream)
        self.view.hold(rollout, sit_out=bool(problem))

    async def _unservable(self, rollout: Rollout) -> str:
        """Why the rollout's candidate cannot be served here, or ''."""
        try:
            candidate = self.catalogue.version(rollout.model, rollout.candidate_version)
            self.catalogue.version(rollout.model, rollout.live_version)
        except UnknownVersion as error:
            return str(error)
        try:
            served = await self.candidates.serves(candidate)
        except VigilError as error:
            logger.warning("cannot ask TorchServe about %s %s: %s", candidate.name,
                           candidate.version, error)
            return ""
        return "" if served else f"TorchServe does not serve {candidate.name} {candidate.version}"

    def record(self, rollout: Rollout, stream_id: str, latency_ms: float, *,
               failed: bool = False, pair: tuple[Scored, Scored] | None = None,
               live_ms: float | None = None) -> None:
        """One candidate request's outcome for a clip of ``stream_id``, the gates' only
        input: it failed (no answer, or an answer that is no score), or it answered; a
        shadow answer comes with its ``pair``, (the clip's live verdict, the candidate's),
        and the live request's latency where known.
        Ignored when the rollout has moved on since the clip was planned, or its next state
        is being written (the figures stay those the decision was made on)."""
        if not self.view.is_current(rollout) or rollout.key in self._moving:
            return
        stats = self._stats[rollout.key]
        if pair is not None:
            stats.add_pair(stream_id, *pair,
                           latencies_ms=None if live_ms is None else (live_ms, latency_ms))
        stats.add_request(stream_id, latency_ms, failed=failed, slow_ms=self.config.max_p99_ms)
        self._judge(rollout, stats)

    def _judge(self, rollout: Rollout, stats: StepStats) -> None:
        key = rollout.key
        judgement = judge(stats, self.config)
        for gate in judgement.gates:
            self._gate(*key, gate.name).set(gate.value)
            self._bound(*key, gate.name, "lower").set(gate.lower)
            self._bound(*key, gate.name, "upper").set(gate.upper)  # +Inf while unbounded
        if "flip_rate" in judgement.figures:
            self._flip_rate(*key).set(judgement.figures["flip_rate"])
        if judgement.decision != Decision.WAIT:
            self._moving.add(key)
            if not self._decisions.try_spawn(self._decide(rollout, judgement), "rollout-decision"):
                self._moving.discard(key)  # stopping: the next daemon judges afresh

    async def _decide(self, rollout: Rollout, judgement: Judgement) -> None:
        moves = {Decision.ROLL_BACK: rollout.rolled_back,
                 Decision.INCONCLUSIVE: rollout.inconclusive,
                 Decision.PROMOTE: partial(rollout.promoted, self.config.canary_steps)}
        try:
            await self._move(rollout, moves[judgement.decision](judgement.reason))
        except VigilError as error:  # the database: the next judgement tries again
            logger.error("%s %s: cannot write the rollout's next state: %s", *rollout.key,
                         error)
        finally:
            self._moving.discard(rollout.key)

    async def _move(self, rollout: Rollout, new: Rollout) -> None:
        if not await self.table.write(new, rollout):
            logger.info("%s %s: changed elsewhere first; re-reading", *rollout.key)
            with contextlib.suppress(VigilError):
                await self.refresh()
            return
        if new.state == State.ROLLED_BACK:
            self._rollbacks(*rollout.key).inc()
            logger.warning("%s %s: ROLLED BACK candidate %s: %s", *rollout.key,
                           rollout.candidate_version, new.reason)
        elif new.state == State.INCONCLUSIVE:
            logger.warning("%s %s: candidate %s INCONCLUSIVE, live serves until a person "
                           "promotes or rolls it back (vigil rollout): %s", *rollout.key,
                           rollout.candidate_version, new.reason)
        await self._apply(new)


def _poll_failed(error: Exception) -> None:
    if isinstance(error, VigilError):  # the database is down: keep the last state
        logger.warning("cannot re-read model_rollouts: %s", error)
    else:
        logger.error("re-reading model_rollouts failed", exc_info=error)
