"""VRT, first-line scoring of every new post within 10 minutes, a post's whole path:

    posts.created → parse_post (validate)
        → batch of ≤ 8 → PostScorer, per post concurrently: fetch the media (allow-list,
          limits) → the extractors at once (visual frames, audio track, text) → the fusion
          head (7 categories, score = 1 - p(safe))
        → posts and post_scores (upserts) and posts.scored (acknowledged event)
        → acknowledge; or the dead-letter topic, with the reason.

A post scored more than ``vrt.sla_s`` after its ``created_at`` counts as an SLA miss.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson

from orchestrator.catalogue import (
    ANY_LANGUAGE,
    Catalogue,
    ModelEntry,
    check_request_timeout,
)
from orchestrator.clock import iso_from_epoch, iso_utc, ms_since
from orchestrator.db import TableSink
from orchestrator.errors import BadModelResponse, InvalidField
from orchestrator.flow import Failure, Stages, gather_outcomes
from orchestrator.kafka import TopicSink
from orchestrator.messages import PostMessage, parse_post
from orchestrator.metrics import Metrics
from orchestrator.monitoring import ScoreDrift
from orchestrator.pipelines.resources import Resources
from orchestrator.serving import Extractors, MediaFetcher, answers

NAME = "vrt"


@dataclass(frozen=True, slots=True)
class PostScore:
    """A post's fused categories, checked: finite probabilities of the head's labels."""

    post: PostMessage
    score: float
    categories: dict[str, float]
    top_category: str
    model_version: str
    modalities: list[str]
    latency_ms: int
    scored_at: str

    @classmethod
    def from_answer(cls, post: PostMessage, answer: Any, labels: Sequence[str],
                    modalities: list[str], model: str) -> PostScore:
        """Raises :class:`BadModelResponse` unless every label has a probability in [0, 1],
        the score is one and the top category is a label."""
        categories = answer.get("categories") if isinstance(answer, dict) else None
        if not isinstance(categories, dict) or set(categories) != set(labels):
            raise BadModelResponse(f"{model}: categories are not the labels {list(labels)}: "
                                   f"{str(answer)[:200]}")
        return cls(post, answers.probability(answer, "score", model),
                   {label: answers.probability(categories, label, model) for label in labels},
                   answers.label(answer, "top_category", labels, model),
                   str(answer.get("model_version", "")), modalities,
                   round(ms_since(post.received_at)), iso_utc())

    def post_row(self) -> dict[str, Any]:
        """The ``posts`` row: the triage's user history grows from here, and the review
        tool shows its caption and media."""
        return {"post_id": self.post.post_id, "user_id": self.post.user_id,
                "created_at": iso_from_epoch(self.post.created_at), "caption": self.post.text,
                "media_url": self.post.media_url}

    def score_row(self) -> dict[str, Any]:
        """The ``post_scores`` row."""
        return {"post_id": self.post.post_id, "user_id": self.post.user_id,
                "created_at": iso_from_epoch(self.post.created_at), "score": self.score, "top_category": self.top_category,
                "categories": orjson.dumps(self.categories).decode(),
                "model_version": self.model_version, "scored_at": self.scored_at}

    def summary(self) -> dict[str, Any]:
        """The ``posts.scored`` event without what the input brought: Vigil's fields."""
        return {**self.post_row(), "score": self.score, "categories": self.categories,
                "top_category": self.top_category, "model_version": self.model_version,
                "modalities": self.modalities, "scored_at": self.scored_at,
                "latency_ms": self.latency_ms}

    def event(self) -> dict[str, Any]:
        """The ``posts.scored`` event: Vigil's fields, the post's media, text and language,
        and the input's other fields under ``extra``, where no reader can take them for
        Vigil's."""
        post = self.post
        return {**self.summary(), "video_url": post.video_url, "image_url": post.image_url,
                "text": post.text, "language": post.language, "extra": post.extra}

    def key(self) -> bytes | None:
        return self.post.envelope.key


class PostScorer:
    """Scores each post of a batch: media, extractors, fusion."""

    def __init__(self, fetcher: MediaFetcher, extractors: Extractors, metrics: Metrics) -> None:
        self.fetcher = fetcher
        self.extractors = extractors
        self.media_fetch = metrics.media_fetch.labels(NAME)

    async def score(self, posts: Sequence[PostMessage]) -> list[PostScore | Failure]:
        return await gather_outcomes(self._score_one(post) for post in posts)

    async def _score_one(self, post: PostMessage) -> PostScore:
        media = await self._fetch(post.media_url) if post.media_url else None
        kind = "video" if post.video_url else "image"
        embeddings = await self.extractors.embed(media, kind, post.text)
        fusion = self.extractors.fusion
        answer = await self.extractors.fuse(embeddings)
        present = sorted(m for m, e in embeddings.items() if e is not None)
        return PostScore.from_answer(post, answer, fusion.labels, present, fusion.name)

    async def _fetch(self, url: str) -> bytes:
        with self.media_fetch.time():
            media = await self.fetcher.fetch(url)
        if not media:
            raise InvalidField(f"media is empty (0 bytes): {url[:200]}")
        return media


def account(metrics: Metrics, sla_s: float, drift: ScoreDrift, fusion: ModelEntry,
            post: PostMessage, result: PostScore) -> None:
    age = max(0.0, time.time() - post.created_at)
    metrics.verdicts.labels(NAME, result.top_category).inc()
    metrics.end_to_end.labels(NAME).observe(age)
    drift.observe(fusion, ANY_LANGUAGE, result.score)
    if age > sla_s:
        metrics.vrt_sla_missed.inc()


async def open_stages(opened: Resources) -> Stages[PostMessage, PostScore]:
    """The VRT stages; raises :class:`~orchestrator.errors.ConfigError` when the fusion
    archive or one of its extractors is not served."""
    config, store, metrics = opened.config, opened.store, opened.metrics
    client, fetcher = await opened.model_clients(NAME)
    extractors = Extractors.from_catalogue(
        client.predict, Catalogue.load(config.torchserve.catalogue), config.vrt.fusion_model)
    check_request_timeout(extractors.models, config)
    await client.check_served(extractors.models)
    return Stages(
        name=NAME,
        parse=parse_post,
        scorer=PostScorer(fetcher, extractors, metrics),
        sinks=[TableSink(store, "posts", PostScore.post_row),
               TableSink(store, "post_scores", PostScore.score_row),
               TopicSink(opened.producer, config.kafka.output_topic, event=PostScore.event,
                         summary=PostScore.summary, key=PostScore.key)],
        account=partial(account, metrics, config.vrt.sla_s,
                        ScoreDrift(metrics, NAME, config.drift), extractors.fusion))
