"""A daemon's side of the rollouts: which version scores a clip, and the gates that move a
rollout on.

Every ``rollout.poll_s`` the daemon re-reads the rollouts of the models it routes to (so
``vigil rollout`` and other replicas are heard); each change of a rollout's row starts its
step's figures afresh. A daemon that cannot serve a running rollout's candidate (its
TorchServe or its catalogue lacks it: an old pod in the middle of a deploy) sits that rollout
out, serving live only: one replica's view must not roll back what the others can judge.
A clip routed to a model with a running rollout gets a :class:`Plan`: its stream is on the
candidate (canary), or the live version serves it and the candidate may also score it in
shadow. Every outcome of a candidate request comes back through :meth:`RolloutControl.record`
(its one caller is :class:`~orchestrator.rollouts.shadow.CandidateRequests`); after each, the
step is judged
(:func:`orchestrator.rollouts.gates.judge`) and a promotion or a rollback is written at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.catalogue import Catalogue, ModelEntry
from orchestrator.config import RolloutConfig
from orchestrator.errors import UnknownVersion, VigilError
from orchestrator.messages import ClipMessage
from orchestrator.metrics import Metrics, labelled
from orchestrator.rollouts.gates import Decision, Judgement, Scored, StepStats, judge
from orchestrator.rollouts.table import Rollout, RolloutTable, State, share_of
from orchestrator.serving import TorchServeClient

logger = logging.getLogger(__name__)
Key = tuple[str, str]  # model, routed language
DROP_REASONS = ("full", "store")  # why a shadow request is dropped (orchestrator.rollouts.shadow)


@dataclass(frozen=True, slots=True)
class Plan:
    """Which versions a clip meets."""

    serve: ModelEntry  # the version whose answer is the clip's verdict
    live: ModelEntry  # what serves it should the candidate fail (canary)
    shadow: ModelEntry | None = None  # a candidate that also scores it, recorded only
    rollout: Rollout | None = None  # the step it was planned under

    @property
    def on_candidate(self) -> bool:
        return self.serve is not self.live


class RolloutControl:
    """The rollouts of the routed models, as the database has them, and their gates."""

    def __init__(self, table: RolloutTable, catalogue: Catalogue, candidates: TorchServeClient,
                 config: RolloutConfig, metrics: Metrics, *,
                 routed: Sequence[ModelEntry]) -> None:
        self.table = table
        self.catalogue = catalogue
        self.routed = {model.name: model for model in routed}
        self.candidates = candidates
        self.config = config
        self._state = labelled(metrics.rollout_state)
        self._gate = labelled(metrics.rollout_gate)
        self._flip_rate = labelled(metrics.shadow_flip_rate)
        self._rollbacks = labelled(metrics.rollbacks)
        self._dropped = labelled(metrics.shadow_dropped)
        self._rollouts: dict[Key, Rollout] = {}
        self._stats: dict[Key, StepStats] = {}
        self._moving: set[Key] = set()
        self._sitting_out: set[Key] = set()
        self._tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> RolloutControl:
        await self.refresh()
        self._poller = asyncio.create_task(self._poll(), name="rollout-poll")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._poller.cancel()
        await asyncio.gather(self._poller, *self._tasks, return_exceptions=True)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_s)
            try:
                await self.refresh()
            except VigilError as error:  # the database is down: keep the last state
                logger.warning("cannot re-read model_rollouts: %s", error)
            except Exception:  # noqa: BLE001 - the next poll may do better; never stop polling
                logger.exception("re-reading model_rollouts failed")

    async def adopt_candidates(self) -> None:
        """Start a rollout for each routed model whose catalogue names a candidate that was
        never rolled out for that language."""
        for live in self.routed.values():
            version = self.catalogue.candidates.get(live.name)
            if version is None:
                continue
            for language in live.languages:
                row = await self.table.get(live.name, language)
                if row is not None and (row.candidate_version == version or row.running):
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
            if rollout.model in self.routed and self._rollouts.get(rollout.key) != rollout:
                await self._apply(rollout)

    async def _apply(self, rollout: Rollout) -> None:
        self._rollouts[rollout.key] = rollout
        self._stats[rollout.key] = StepStats()
        self._state(*rollout.key).set(rollout.step(self.config.canary_steps))
        # Counter series at 0 from the start, so rates and alerts see the first increase.
        self._rollbacks(*rollout.key)
        for reason in DROP_REASONS:
            self._dropped(*rollout.key, reason)
        logger.info("%s %s: live %s, candidate %s: %s %.0f%%, %s (%s)", *rollout.key,
                    rollout.live_version, rollout.candidate_version, rollout.mode,
                    rollout.fraction * 100, rollout.state, rollout.reason)
        self._sitting_out.discard(rollout.key)
        if rollout.running:
            problem = await self._unservable(rollout)
            if problem:
                self._sitting_out.add(rollout.key)
                logger.warning("%s %s: this daemon sits the rollout of %s out, serving live "
                               "only: %s", *rollout.key, rollout.candidate_version, problem)

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

    def serving(self) -> list[ModelEntry]:
        """The versions that serve verdicts where a rollout promoted another version than
        the catalogue's live one."""
        return [self._entry(self.routed[rollout.model], rollout.serving_version)
                for rollout in self._rollouts.values()
                if rollout.serving_version != self.routed[rollout.model].version]

    def plan(self, clip: ClipMessage) -> Plan:
        """The versions ``clip`` meets."""
        routed = clip.model
        key = (routed.name, routed.metric_language(clip.language))
        rollout = self._rollouts.get(key)
        if rollout is None:
            return Plan(routed, routed)
        live = self._entry(routed, rollout.serving_version)
        if not rollout.running or key in self._sitting_out:
            return Plan(live, live)
        candidate = self._entry(routed, rollout.candidate_version)
        if rollout.on_candidate(clip.stream_id):
            return Plan(candidate, live, rollout=rollout)
        sampled = share_of(f"shadow/{clip.clip_id}") < self.config.shadow_sample
        return Plan(live, live, candidate if sampled else None, rollout)

    def _entry(self, routed: ModelEntry, version: str) -> ModelEntry:
        try:
            return self.catalogue.version(routed.name, version)
        except UnknownVersion:  # a version this daemon's catalogue lacks: it serves live
            return routed

    def record(self, rollout: Rollout, latency_ms: float, *, failed: bool = False,
               pair: tuple[Scored, Scored] | None = None) -> None:
        """One candidate request's outcome, the gates' only input: it failed (no answer, or
        an answer that is no score), or it answered; a shadow answer comes with its
        ``pair``, (the clip's live verdict, the candidate's)."""
        stats = self._step_stats(rollout)
        if stats is not None:
            if pair is not None:
                stats.add_pair(*pair)
            stats.add_request(latency_ms, failed=failed)
            self._judge(rollout, stats)

    def _step_stats(self, rollout: Rollout) -> StepStats | None:
        """The figures of ``rollout``'s step, or None when the rollout has moved on since
        the clip was planned (an answer from the last step must not judge this one) or its
        next state is being written (the figures stay those the decision was made on)."""
        if self._rollouts.get(rollout.key) is rollout and rollout.running \
                and rollout.key not in self._moving:
            return self._stats[rollout.key]
        return None

    def _judge(self, rollout: Rollout, stats: StepStats) -> None:
        key = rollout.key
        judgement = judge(stats, self.config)
        for gate, value in judgement.figures.items():
            self._gate(*key, gate).set(value)
        if "flip_rate" in judgement.figures:
            self._flip_rate(*key).set(judgement.figures["flip_rate"])
        # _step_stats: no decision of this rollout is being written.
        if judgement.decision in (Decision.PROMOTE, Decision.ROLL_BACK):
            self._moving.add(key)
            task = asyncio.create_task(self._decide(rollout, judgement))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _decide(self, rollout: Rollout, judgement: Judgement) -> None:
        try:
            if judgement.decision == Decision.ROLL_BACK:
                await self._move(rollout, rollout.rolled_back(judgement.reason))
            else:
                await self._move(rollout, rollout.promoted(self.config.canary_steps,
                                                           judgement.reason))
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
        await self._apply(new)
