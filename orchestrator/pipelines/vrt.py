"""VRT: posts.created -> fetch media -> extractors (fan-out) -> fusion (fan-in) -> post_scores.

Per post, the three extractor archives run concurrently: the visual one on the video or
image, the audio one on the video (its audio track), the text one on the caption. Their
embeddings go to the fusion archive in one request; a missing modality is sent as ``null``.
A post scored more than ``vrt.sla_s`` after its ``created_at`` counts as an SLA miss.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from orchestrator import answers
from orchestrator.errors import BadModelResponse, InvalidField, MissingField
from orchestrator.extractors import Extractors
from orchestrator.media import MediaFetcher
from orchestrator.pipelines.base import (ModelPipeline, Runtime, parse_json_object,
                                         parse_time)
from orchestrator.source import Envelope
from orchestrator.stores import iso_utc
from orchestrator.torchserve import TorchServeClient

MEDIA_FIELDS = ("video_url", "image_url")


@dataclass(frozen=True)
class PostRequest:
    envelope: Envelope
    message: dict[str, Any]
    created_at: float  # epoch seconds
    received_at: float  # monotonic seconds

    @property
    def media_url(self) -> str | None:
        return self.message.get("video_url") or self.message.get("image_url")

    @property
    def is_video(self) -> bool:
        return bool(self.message.get("video_url"))

    @property
    def text(self) -> str | None:
        text = self.message.get("text")
        return text if text and text.strip() else None


def parse(envelope: Envelope) -> PostRequest:
    """Validate one ``posts.created`` message; raises a :class:`BadMessage` naming the problem."""
    message = parse_json_object(envelope)
    for name in ("post_id", "user_id"):
        if not message.get(name):
            raise MissingField(f"missing field {name!r}")
        if not isinstance(message[name], str):
            raise InvalidField(f"field {name!r} must be a string")
    for name in (*MEDIA_FIELDS, "text"):
        if message.get(name) is not None and not isinstance(message[name], str):
            raise InvalidField(f"field {name!r} must be a string")
    request = PostRequest(envelope, message,
                          parse_time(message.get("created_at"), "created_at", envelope),
                          time.monotonic())
    if request.media_url is None and request.text is None:
        raise MissingField("a post needs video_url, image_url or text")
    return request


class VrtPipeline(ModelPipeline[PostRequest]):
    """First-line multimodal scoring of every new post."""

    name = "vrt"

    def __init__(self, runtime: Runtime, client: TorchServeClient, fetcher: MediaFetcher) -> None:
        super().__init__(runtime, client, fetcher)
        self.models = runtime.config.vrt
        self.extractors = Extractors(lambda model, body: self.predict(client, model, body),
                                     self.models)

    def parse(self, envelope: Envelope) -> PostRequest:
        return parse(envelope)

    async def process_batch(self, items: list[PostRequest]) -> None:
        scored = await self.score_each(items, self._score)
        if scored:
            rows = {"posts": [_post_row(event) for _, event in scored],
                    "post_scores": [_score_row(event) for _, event in scored]}
            await self.spawn(self.write_results(scored, rows, self._account, "scores"), "scores")

    async def _fetch(self, url: str) -> bytes:
        started = time.monotonic()
        media = await self.fetcher.fetch(url)
        self.metrics.media_fetch.labels(self.name).observe(time.monotonic() - started)
        if not media:
            raise InvalidField(f"media is empty (0 bytes): {url[:200]}")
        return media

    async def _score(self, request: PostRequest) -> dict[str, Any]:
        media = await self._fetch(request.media_url) if request.media_url else None
        embeddings = await self.extractors.embed(media, request.is_video, request.text)
        fused = await self.extractors.fuse(embeddings)
        model = self.models.fusion_model
        categories = fused.get("categories") if isinstance(fused, dict) else None
        if not isinstance(categories, dict) or not categories:
            raise BadModelResponse(f"{model}: no categories in {str(fused)[:200]}")
        return {
            **request.message,
            "score": answers.probability(fused, "score", model),
            "categories": {str(k): answers.probability(categories, k, model)
                           for k in categories},
            "top_category": answers.label(fused, "top_category", categories, model),
            "model_version": str(fused.get("model_version", "")),
            "modalities": sorted(m for m, e in embeddings.items() if e is not None),
            "created_at": iso_utc(datetime.fromtimestamp(request.created_at, timezone.utc)),
            "scored_at": iso_utc(),
            "latency_ms": round((time.monotonic() - request.received_at) * 1000),
        }

    def _account(self, request: PostRequest, event: dict[str, Any]) -> None:
        age = max(0.0, time.time() - request.created_at)
        self.metrics.verdicts.labels(self.name, event["top_category"]).inc()
        self.metrics.end_to_end.labels(self.name).observe(age)
        if age > self.models.sla_s:
            self.metrics.vrt_sla_missed.inc()


def _post_row(event: dict[str, Any]) -> dict[str, Any]:
    return {"post_id": event["post_id"], "user_id": event["user_id"],
            "created_at": event["created_at"]}


def _score_row(event: dict[str, Any]) -> dict[str, Any]:
    return {**_post_row(event), "score": event["score"], "top_category": event["top_category"],
            "categories": json.dumps(event["categories"]),
            "model_version": event["model_version"], "scored_at": event["scored_at"]}
