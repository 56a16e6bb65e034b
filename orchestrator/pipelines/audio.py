"""Livestream audio moderation, a clip's whole path:

    livestream.audio → parse_clip (validate, route to the language's model)
        → batch of ≤ 8 → ClipScorer (fetch each clip; the batch's clips to their models
          concurrently, one request per clip or one per model)
        → audio_verdicts (upsert) and moderation.verdicts (acknowledged event)
        → acknowledge; or the dead-letter topic, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from prometheus_client import Counter, Histogram

from orchestrator import answers
from orchestrator.catalogue import Catalogue, Router
from orchestrator.clock import iso_utc
from orchestrator.config import AppConfig
from orchestrator.drift import ScoreDrift
from orchestrator.flow import Stages
from orchestrator.media import MediaFetcher
from orchestrator.messages import ClipMessage, parse_clip
from orchestrator.metrics import Metrics, labelled
from orchestrator.outcomes import Failure, gather_outcomes
from orchestrator.retry import Health
from orchestrator.sinks import EventProducer, TableSink, TopicSink
from orchestrator.stores import Store
from orchestrator.torchserve import TorchServeClient

NAME = "audio"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A clip's score from its model, checked: finite, in [0, 1], a label the model has."""

    clip: ClipMessage
    model: str
    model_version: str
    engine: str
    precision: str
    score: float
    label: str
    threshold: float
    latency_ms: int
    scored_at: str

    @classmethod
    def from_answer(cls, clip: ClipMessage, answer: Any) -> Verdict:
        """Raises :class:`~orchestrator.errors.BadModelResponse` for an answer that is not
        a finite score in [0, 1] with one of the model's labels."""
        model = clip.model
        answered = answer if isinstance(answer, dict) else {}
        return cls(clip, model.name, model.version,
                   str(answered.get("engine", model.engine)),
                   str(answered.get("precision", model.precision)),
                   answers.probability(answer, "score", model.name),
                   answers.label(answer, "label", model.labels, model.name),
                   answers.probability(answer, "threshold", model.name),
                   round((time.monotonic() - clip.received_at) * 1000), iso_utc())

    def row(self) -> dict[str, Any]:
        """The ``audio_verdicts`` row."""
        return {"clip_id": self.clip.clip_id, "stream_id": self.clip.stream_id,
                "language": self.clip.language, "model": self.model,
                "model_version": self.model_version, "score": self.score, "label": self.label,
                "threshold": self.threshold, "scored_at": self.scored_at}

    def event(self) -> dict[str, Any]:
        """The ``moderation.verdicts`` event: the clip's own fields, less its audio."""
        kept = {k: v for k, v in self.clip.fields.items() if k != "audio_b64"}
        return {**kept, **self.row(), "engine": self.engine, "precision": self.precision,
                "latency_ms": self.latency_ms}

    def key(self) -> bytes | None:
        return self.clip.envelope.key


class ClipScorer:
    """Scores each clip of a batch with its language's model, all concurrently."""

    def __init__(self, client: TorchServeClient, fetcher: MediaFetcher, *,
                 batch_requests: bool) -> None:
        self.client = client
        self.fetcher = fetcher
        self.batch_requests = batch_requests

    async def score(self, clips: Sequence[ClipMessage]) -> list[Verdict | Failure]:
        if self.batch_requests:
            return await self._score_by_model(clips)
        return await gather_outcomes(self._score_one(clip) for clip in clips)

    async def _score_one(self, clip: ClipMessage) -> Verdict:
        body = await self._fetch(clip)
        return Verdict.from_answer(clip, await self.client.predict(clip.model, body))

    async def _score_by_model(self, clips: Sequence[ClipMessage]) -> list[Verdict | Failure]:
        """Fetch every clip, then send each model its clips in one request, concurrently."""
        outcomes: list[Any] = await gather_outcomes(self._fetch(clip) for clip in clips)
        by_model: dict[str, list[int]] = {}
        for index, (clip, body) in enumerate(zip(clips, outcomes)):
            if not isinstance(body, Failure):
                by_model.setdefault(clip.model.path, []).append(index)

        async def score(indices: list[int]) -> None:
            model = clips[indices[0]].model
            try:
                answered = await self.client.predict_batch(model, [outcomes[i] for i in indices])
            except Exception as error:  # noqa: BLE001 - a failed request fails its clips
                answered = [error] * len(indices)
            for index, answer in zip(indices, answered, strict=True):
                outcomes[index] = _verdict_or_failure(clips[index], answer)

        await asyncio.gather(*(score(indices) for indices in by_model.values()))
        return outcomes

    async def _fetch(self, clip: ClipMessage) -> bytes:
        if clip.audio_b64 is not None:
            return self.fetcher.decode_inline(clip.audio_b64)
        return await self.fetcher.fetch(clip.audio_url)


def _verdict_or_failure(clip: ClipMessage, answer: Any) -> Verdict | Failure:
    if isinstance(answer, BaseException):
        return Failure(answer)
    try:
        return Verdict.from_answer(clip, answer)
    except Exception as error:  # noqa: BLE001 - this clip's answer is bad, not its batch's
        return Failure(error)


def account(verdicts: Callable[..., Counter], end_to_end: Histogram, drift: ScoreDrift,
            clip: ClipMessage, verdict: Verdict) -> None:
    verdicts(NAME, verdict.label).inc()
    end_to_end.observe(max(0.0, time.time() - clip.created_at))
    drift.observe(clip.model, clip.language, verdict.score)


async def open_stages(config: AppConfig, stack: contextlib.AsyncExitStack, *, store: Store,
                      producer: EventProducer, metrics: Metrics,
                      health: Callable[[str], Health]) -> Stages[ClipMessage, Verdict]:
    """The audio stages, their clients opened on ``stack``; raises
    :class:`~orchestrator.errors.ConfigError` when a routed model is not served."""
    router = Router.for_audio(Catalogue.load(config.torchserve.catalogue), config.routing)
    retries = metrics.retries.labels(NAME)
    client = await stack.enter_async_context(TorchServeClient(
        config.torchserve, on_retry=lambda error: retries.inc(), health=health("torchserve"),
        inference=metrics.inference))
    await client.check_served(router.models)
    fetcher = await stack.enter_async_context(
        MediaFetcher(config.media, on_retry=lambda error: retries.inc()))
    return Stages(
        name=NAME,
        parse=partial(parse_clip, route=router.route),
        scorer=ClipScorer(client, fetcher, batch_requests=config.torchserve.batch_requests),
        sinks=[TableSink(store, "audio_verdicts", Verdict.row),
               TopicSink(producer, config.kafka.output_topic, Verdict.event, Verdict.key)],
        account=partial(account, labelled(metrics.verdicts), metrics.end_to_end.labels(NAME),
                        ScoreDrift(metrics, NAME, config.drift)))
