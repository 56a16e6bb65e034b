"""Livestream audio moderation, a clip's whole path:

    livestream.audio → parse_clip (validate, route to the language's model)
        → batch of ≤ 8 → ClipScorer (fetch each clip; the version each clip meets: live,
          or the candidate for a canary stream (rollouts.ClipVersions); the batch's clips to
          their models concurrently, one request per clip or one per model; after the
          verdicts, the shadow sample to the candidate, recorded in shadow_verdicts only)
        → audio_verdicts (upsert), moderation.verdicts (acknowledged event), and
          review_samples (every flagged clip, and the keyed audit sample of the others)
        → acknowledge; or the dead-letter topic, with the reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from prometheus_client import Counter, Histogram

from orchestrator.catalogue import Catalogue, ModelEntry, Router, check_request_timeout
from orchestrator.clock import iso_from_epoch, iso_utc, ms_since
from orchestrator.config import AppConfig
from orchestrator.db import TableSink
from orchestrator.flow import Failure, Stages, gather_outcomes
from orchestrator.kafka import TopicSink
from orchestrator.messages import ClipMessage, parse_clip
from orchestrator.metrics import labelled
from orchestrator.monitoring import AuditSampler, Reviewable, ReviewSampleSink, ScoreDrift
from orchestrator.pipelines.resources import Resources
from orchestrator.rollouts import (
    CandidateRequests,
    ClipVersions,
    Plan,
    RolloutControl,
    RolloutTable,
    RolloutView,
    Scored,
    Shadow,
)
from orchestrator.serving import MediaFetcher, TorchServeClient, answers

NAME = "audio"
SCORED_BY = ("model", "energy_gate", "screen")


def scored(model: ModelEntry, answer: Any) -> Scored:
    """``model``'s answer, checked: a finite score and threshold in [0, 1] and one of the
    model's labels; raises :class:`~orchestrator.errors.BadModelResponse` otherwise."""
    score = answers.probability(answer, "score", model.name)
    return Scored(score, answers.label(answer, "label", model.labels, model.name),
                  score >= answers.probability(answer, "threshold", model.name))


@dataclass(frozen=True, slots=True)
class Verdict:
    """A clip's score from the model version that served it, checked."""

    clip: ClipMessage
    model: ModelEntry
    engine: str
    precision: str
    # "model"; "energy_gate" for a clip with nothing audible in it; "screen" for a clip the
    # archive's screening model answered alone (under its threshold)
    scored_by: str
    score: float
    label: str
    threshold: float
    latency_ms: int
    scored_at: str

    @classmethod
    def from_answer(cls, clip: ClipMessage, model: ModelEntry, answer: Any) -> Verdict:
        """Raises :class:`~orchestrator.errors.BadModelResponse` for an answer that is not
        a finite score in [0, 1] with one of the model's labels."""
        answered = answer if isinstance(answer, dict) else {}
        checked = scored(model, answer)
        # Archives built before the energy gate name no scorer: their model scored it.
        scored_by = (answers.label(answer, "scored_by", SCORED_BY, model.name)
                     if "scored_by" in answered else "model")
        return cls(clip, model, str(answered.get("engine", model.engine)),
                   str(answered.get("precision", model.precision)), scored_by, checked.score,
                   checked.label, answers.probability(answer, "threshold", model.name),
                   round(ms_since(clip.received_at)), iso_utc())

    def scored(self) -> Scored:
        return Scored(self.score, self.label, self.score >= self.threshold)

    def reviewable(self) -> Reviewable:
        return Reviewable(self.clip.clip_id, "clip", self.model.name, self.model.version,
                          self.model.metric_language(self.clip.language), self.score,
                          self.threshold, self.scored_at, self.clip.audio_url)

    def row(self) -> dict[str, Any]:
        """The ``audio_verdicts`` row."""
        return {"clip_id": self.clip.clip_id, "stream_id": self.clip.stream_id,
                "language": self.clip.language, "model": self.model.name,
                "model_version": self.model.version, "score": self.score, "label": self.label,
                "threshold": self.threshold, "scored_at": self.scored_at}

    def summary(self) -> dict[str, Any]:
        """The ``moderation.verdicts`` event without what the input brought: Vigil's fields."""
        return {**self.row(), "engine": self.engine, "precision": self.precision,
                "scored_by": self.scored_by, "latency_ms": self.latency_ms, "created_at": iso_from_epoch(self.clip.created_at)}

    def event(self) -> dict[str, Any]:
        """The ``moderation.verdicts`` event: Vigil's fields, the clip's URL, and the input's
        other fields under ``extra``, where no reader can take them for Vigil's."""
        return {**self.summary(), "audio_url": self.clip.audio_url, "extra": self.clip.extra}

    def key(self) -> bytes | None:
        return self.clip.envelope.key


@dataclass(frozen=True, slots=True)
class Heard:
    """A clip's audio, its verdict, and how long the request that gave it took: both go on
    to a shadow request."""

    body: bytes
    verdict: Verdict
    request_ms: float


def _heard(body: bytes, outcome: Verdict | Failure, request_ms: float) -> Heard | Failure:
    return Heard(body, outcome, request_ms) if isinstance(outcome, Verdict) else outcome



class ClipScorer:
    """Scores each clip of a batch with its language's model, all concurrently.

    Where a rollout runs, a canary stream's clips go to the candidate (to live should it
    fail), and a sample of the others is also scored by the candidate in shadow, after
    their verdicts exist.
    """

    def __init__(self, client: TorchServeClient, fetcher: MediaFetcher, *,
                 batch_requests: bool, versions: ClipVersions) -> None:
        self.client = client
        self.fetcher = fetcher
        self.batch_requests = batch_requests
        self.versions = versions

    async def score(self, clips: Sequence[ClipMessage]) -> list[Verdict | Failure]:
        plans = [self.versions.plan(clip) for clip in clips]
        if self.batch_requests:
            heard = await self._score_by_model(clips, plans)
        else:
            heard = await gather_outcomes(self._score_one(clip, plan)
                                          for clip, plan in zip(clips, plans))
        outcomes: list[Verdict | Failure] = []
        for clip, plan, outcome in zip(clips, plans, heard):
            if isinstance(outcome, Failure):
                outcomes.append(outcome)
                continue
            verdict = outcome.verdict
            self.versions.shadow(clip, plan, outcome.body, verdict.scored(), outcome.request_ms)
            outcomes.append(verdict)
        return outcomes

    async def _score_one(self, clip: ClipMessage, plan: Plan) -> Heard:
        """Fetch, then score: each clip goes as soon as its own audio is in."""
        body = await self._fetch(clip)
        started = time.monotonic()
        return Heard(body, await self._verdict(clip, plan, body), ms_since(started))

    async def _score_by_model(self, clips: Sequence[ClipMessage], plans: Sequence[Plan]
                              ) -> list[Heard | Failure]:
        """Fetch every clip, then send each model its clips in one request, concurrently (a
        canary clip goes alone: should the candidate fail it, live scores it)."""
        fetched = await gather_outcomes(self._fetch(clip) for clip in clips)
        heard: dict[int, Heard | Failure] = {}
        by_model: dict[str, list[int]] = {}
        canary = []
        for index, (plan, body) in enumerate(zip(plans, fetched)):
            if isinstance(body, Failure):
                heard[index] = body
            elif plan.on_candidate:
                canary.append(index)
            else:
                by_model.setdefault(plan.serve.path, []).append(index)

        async def one(index: int) -> None:
            started = time.monotonic()
            [outcome] = await gather_outcomes(
                [self._verdict(clips[index], plans[index], fetched[index])])
            heard[index] = _heard(fetched[index], outcome, ms_since(started))

        async def together(indices: list[int]) -> None:
            model = plans[indices[0]].serve
            started = time.monotonic()
            try:
                answered = await self.client.predict_batch(model, [fetched[i] for i in indices])
            except Exception as error:  # noqa: BLE001 - a failed request fails its clips
                answered = [error] * len(indices)
            for index, answer in zip(indices, answered, strict=True):
                heard[index] = _heard(fetched[index],
                                      _verdict_or_failure(clips[index], model, answer),
                                      ms_since(started))

        await asyncio.gather(*(one(index) for index in canary),
                             *(together(indices) for indices in by_model.values()))
        return [heard[index] for index in range(len(clips))]

    async def _verdict(self, clip: ClipMessage, plan: Plan, body: bytes) -> Verdict:
        return await self.versions.predict(clip, plan, body, partial(Verdict.from_answer, clip))

    async def _fetch(self, clip: ClipMessage) -> bytes:
        if clip.audio_b64 is not None:
            return self.fetcher.decode_inline(clip.audio_b64)
        return await self.fetcher.fetch(clip.audio_url)


def _verdict_or_failure(clip: ClipMessage, model: ModelEntry, answer: Any) -> Verdict | Failure:
    if isinstance(answer, BaseException):
        return Failure(answer)
    try:
        return Verdict.from_answer(clip, model, answer)
    except Exception as error:  # noqa: BLE001 - this clip's answer is bad, not its batch's
        return Failure(error)


def account(verdicts: Callable[..., Counter], scored_by: Callable[..., Counter],
            end_to_end: Histogram, drift: ScoreDrift, clip: ClipMessage, verdict: Verdict
            ) -> None:
    verdicts(NAME, verdict.label).inc()
    scored_by(verdict.model.name, verdict.model.version, verdict.scored_by).inc()
    end_to_end.observe(max(0.0, time.time() - clip.created_at))
    drift.observe(verdict.model, clip.language, verdict.score)


def _candidate_client(config: AppConfig, max_connections: int) -> TorchServeClient:
    """A client for candidate versions: one attempt each, within the shadow timeout."""
    return TorchServeClient(dataclasses.replace(
        config.torchserve, timeout_s=config.rollout.shadow_timeout_s,
        max_connections=max_connections), max_attempts=1)


async def open_stages(opened: Resources) -> Stages[ClipMessage, Verdict]:
    """The audio stages, their clients open until the daemon stops; raises
    :class:`~orchestrator.errors.ConfigError` when a routed model is not served."""
    config, store, metrics = opened.config, opened.store, opened.metrics
    catalogue = Catalogue.load(config.torchserve.catalogue)
    router = Router.for_audio(catalogue, config.routing)
    check_request_timeout(router.models, config)
    client, fetcher = await opened.model_clients(NAME)
    await client.check_served(router.models)
    # The candidates' own clients: one attempt (a candidate's failure is evidence for its
    # gates, not an outage to wait out), no say in backpressure, and a pool each, so shadow
    # requests filling theirs never hold up a canary clip's verdict.
    rollout = config.rollout
    canary_client = await opened.enter(_candidate_client(config,
                                                         config.torchserve.max_connections))
    shadow_client = await opened.enter(_candidate_client(config, rollout.shadow_max_in_flight))
    view = RolloutView(catalogue, router.models, shadow_sample=rollout.shadow_sample)
    control = await opened.enter(RolloutControl(
        RolloutTable(store), view, canary_client, rollout, metrics))
    await control.adopt_candidates()
    check_request_timeout(view.serving(), config)
    await client.check_served(view.serving())  # versions promoted since
    shadow = await opened.enter(Shadow(
        CandidateRequests(shadow_client, control), store, rollout.shadow_max_in_flight,
        metrics, scored))
    versions = ClipVersions(view, client, CandidateRequests(canary_client, control), shadow)
    return Stages(
        name=NAME,
        parse=partial(parse_clip, route=router.route),
        scorer=ClipScorer(client, fetcher, batch_requests=config.torchserve.batch_requests,
                          versions=versions),
        sinks=[TableSink(store, "audio_verdicts", Verdict.row),
               ReviewSampleSink(store, AuditSampler(config.quality.audit_rate,
                                                    config.quality.audit_key),
                                Verdict.reviewable),
               TopicSink(opened.producer, config.kafka.output_topic, event=Verdict.event,
                         summary=Verdict.summary, key=Verdict.key)],
        account=partial(account, labelled(metrics.verdicts), labelled(metrics.scored_by),
                        metrics.end_to_end.labels(NAME),
                        ScoreDrift(metrics, NAME, config.drift)))
