"""Model quality from moderators' decisions, a decision's whole path:

    review.decisions → parse_decision (validate)
        → batch of ≤ 8 → DecisionJoiner (each decided clip's score from audio_verdicts:
          model, version, language, score and the threshold it was flagged at; measured
          only when the clip was scored first and the decision is newer than the recorded)
        → review_decisions (the newest decision per item) and QualityBook (a window per
          model, version and
          language: vigil_quality_precision / vigil_quality_recall, and every
          quality.propose_every decided clips a threshold for quality.recall_target in
          threshold_proposals, with the figures behind it; never applied)
        → acknowledge; or the dead-letter topic (a malformed decision), with the reason.

A decision needs its ``moderator_id`` and ``decided_at`` (not ahead of this host's clock by
more than the skew allowed). The newest decision per item wins, in review_decisions and in the
windows: a replayed or duplicated decision changes no figure and does not advance the proposal
cadence. A decision on a post, on a clip without a verdict, or made before its clip was
scored is recorded and measures nothing. At start-up the windows are refilled from
review_decisions joined to audio_verdicts under the same rules, so a restart resumes the
figures.

The audit sample (``review_samples``, written by the audio daemon: every flagged clip and a
keyed share ``quality.audit_rate`` of the others) gives recall and precision estimates that
hold for what was never flagged, with their intervals (``vigil_quality_*_estimate``,
:mod:`orchestrator.monitoring.audit`), re-read every ``quality.audit_every_s``; each
threshold proposal carries the live threshold's estimated recall.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from orchestrator.catalogue import ANY_LANGUAGE, Catalogue
from orchestrator.clock import iso_from_epoch, iso_utc
from orchestrator.config import QualityConfig
from orchestrator.db import Store, TableSink, upsert
from orchestrator.errors import UnknownVersion
from orchestrator.flow import Failure, Periodic, Stages
from orchestrator.messages import MAX_CLOCK_SKEW_S, DecisionMessage, parse_decision
from orchestrator.metrics import Metrics, labelled
from orchestrator.monitoring import (
    AuditBook,
    LabelledScore,
    QualityWindow,
    ScoredClip,
    ScoredClips,
)
from orchestrator.pipelines.resources import Resources

NAME = "quality"
RESTORE_WINDOWS = 10  # start-up reads at most this many windows' worth of decisions


@dataclass(frozen=True, slots=True)
class Judged:
    """A decision, with the clip score it measures: None for a post, an unscored clip, a
    decision made before its clip was scored, or one no newer than the clip's recorded
    decision (a replay or a duplicate)."""

    decision: DecisionMessage
    scored: ScoredClip | None

    def row(self) -> dict[str, Any]:
        """The ``review_decisions`` row."""
        return {"item_id": self.decision.item_id, "kind": self.decision.kind,
                "decision": self.decision.decision, "moderator_id": self.decision.moderator_id,
                "decided_at": iso_from_epoch(self.decision.decided_at)}


class DecisionJoiner:
    """Finds the score each decided clip's decision measures."""

    def __init__(self, clips: ScoredClips) -> None:
        self.clips = clips

    async def score(self, items: Sequence[DecisionMessage]) -> list[Judged | Failure]:
        clip_ids = sorted({item.item_id for item in items if item.kind == "clip"})
        scored, recorded = await asyncio.gather(self.clips.of(clip_ids),
                                                self.clips.recorded(clip_ids))
        return [Judged(item, _measured(item, scored, recorded)) for item in items]


def _measured(item: DecisionMessage, scored: dict[str, ScoredClip],
              recorded: dict[str, str]) -> ScoredClip | None:
    clip = scored.get(item.item_id) if item.kind == "clip" else None
    decided_at = iso_from_epoch(item.decided_at)
    if clip is None or decided_at < clip.scored_at:
        return None
    earlier = recorded.get(item.item_id)
    return clip if earlier is None or decided_at > earlier else None


class QualityBook:
    """The sink that measures: windows of labelled scores, their gauges, and proposals."""

    def __init__(self, store: Store, clips: ScoredClips, catalogue: Catalogue,
                 config: QualityConfig, metrics: Metrics, audit: AuditBook) -> None:
        self.store = store
        self.clips = clips
        self.audit = audit
        self.catalogue = catalogue
        self.config = config
        self._precision = labelled(metrics.quality_precision)
        self._recall = labelled(metrics.quality_recall)
        self._windows: dict[tuple[str, str, str], QualityWindow] = {}
        # Side effects write concurrently: one write at a time stages, writes and keeps its
        # windows, or a write waiting on its proposals would keep copies that lack the
        # decisions another write kept meanwhile.
        self._writing = asyncio.Lock()

    async def restore(self) -> None:
        """Refill the windows from the decisions already recorded (no proposals)."""
        staged: dict[tuple[str, str, str], QualityWindow] = {}
        until = iso_from_epoch(time.time() + MAX_CLOCK_SKEW_S)
        for decided in await self.clips.decided(self.config.window * RESTORE_WINDOWS,
                                                until=until):
            self._stage(staged, decided.clip_id, decided.scored, decided.positive)
        self._commit(staged)

    async def write(self, results: Sequence[Judged]) -> None:
        """Add the decisions to staged copies of their windows, write the proposals that
        fall due, then keep the copies: a write the flow retries (same results, or a
        subset) neither counts a decision twice nor loses a proposal. Writes run one at a
        time."""
        async with self._writing:
            await self._write(results)

    async def _write(self, results: Sequence[Judged]) -> None:
        staged: dict[tuple[str, str, str], QualityWindow] = {}
        due = []
        # Oldest first: of two decisions on one item in a batch, the newest stays.
        for judged in sorted(results, key=lambda judged: judged.decision.decided_at):
            if judged.scored is None:
                continue
            key, window, new = self._stage(staged, judged.decision.item_id, judged.scored,
                                           judged.decision.positive)
            if new and len(window) >= self.config.min_decisions and \
                    window.added % self.config.propose_every == 0:
                due.append(key)
        proposals = [row for key in due if (row := self._proposal(key, staged[key])) is not None]
        if proposals:
            await upsert(self.store, "threshold_proposals", proposals)
        self._commit(staged)

    def _stage(self, staged: dict[tuple[str, str, str], QualityWindow], item_id: str,
               scored: ScoredClip, positive: bool
               ) -> tuple[tuple[str, str, str], QualityWindow, bool]:
        key = (scored.model, scored.version, self._routed(scored))
        if key not in staged:
            live = self._windows.get(key)
            staged[key] = live.copy() if live else QualityWindow(self.config.window)
        window = staged[key]
        return key, window, window.add(item_id, LabelledScore(scored.score, scored.threshold,
                                                              positive))

    def _commit(self, staged: dict[tuple[str, str, str], QualityWindow]) -> None:
        """Keep the staged windows and show their figures."""
        self._windows.update(staged)
        for key, window in staged.items():
            if len(window) < self.config.min_decisions:
                continue
            precision, recall = window.rates()
            if precision is not None:
                self._precision(*key).set(precision)
            if recall is not None:
                self._recall(*key).set(recall)

    def _routed(self, scored: ScoredClip) -> str:
        """The clip's language as a metric label (``*`` for a version no longer built)."""
        try:
            return self.catalogue.version(scored.model, scored.version).metric_language(
                scored.language)
        except UnknownVersion:
            return ANY_LANGUAGE

    def _proposal(self, key: tuple[str, str, str], window: QualityWindow
                  ) -> dict[str, Any] | None:
        proposal = window.proposal(self.config.recall_target)
        if proposal is None:
            return None
        model, version, language = key
        audited = self.audit.latest.get(key)
        return {"model": model, "version": version, "language": language,
                "threshold": proposal.threshold, "target": f"recall:{self.config.recall_target}",
                "precision": proposal.precision, "recall": proposal.recall,
                "decisions": proposal.decisions, "proposed_at": iso_utc(),
                "audit_recall": audited and audited.recall,
                "audit_recall_lower": audited and audited.recall_lower,
                "audit_recall_upper": audited and audited.recall_upper}


def account(decisions: Callable[..., Any], item: DecisionMessage, judged: Judged) -> None:
    decisions(NAME, item.decision).inc()


async def open_stages(opened: Resources) -> Stages[DecisionMessage, Judged]:
    """The quality stages; raises :class:`~orchestrator.errors.ConfigError` without a
    readable catalogue (it names the languages each model version serves)."""
    config, store, metrics = opened.config, opened.store, opened.metrics
    clips = ScoredClips(store)
    audit = AuditBook(store, config.quality, metrics)
    await audit.refresh()
    await opened.enter(Periodic("audit-estimates", config.quality.audit_every_s, audit.refresh))
    book = QualityBook(store, clips, Catalogue.load(config.torchserve.catalogue),
                       config.quality, metrics, audit)
    await book.restore()
    return Stages(name=NAME, parse=parse_decision, scorer=DecisionJoiner(clips),
                  sinks=[TableSink(store, "review_decisions", Judged.row, newest="decided_at"),
                         book],
                  account=partial(account, labelled(metrics.verdicts)))
