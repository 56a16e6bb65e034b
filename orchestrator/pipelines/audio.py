"""Livestream audio moderation: source -> parse -> batcher -> TorchServe (fan-out) -> sinks.

Each consumed message ends in exactly one of two places before its offset may be stored:
a verdict (row upserted and event acknowledged) or a dead letter with its reason.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from orchestrator import answers
from orchestrator.config import RoutingConfig
from orchestrator.errors import InvalidField, MissingField, UnknownLanguage, VigilError
from orchestrator.pipelines.base import ModelPipeline, parse_json_object, parse_time
from orchestrator.source import Envelope
from orchestrator.stores import iso_utc

REQUIRED_FIELDS = ("clip_id", "stream_id", "language")
LABELS = ("safe", "nsfw")


@dataclass(frozen=True)
class ClipRequest:
    """A valid clip message, routed to its model."""

    envelope: Envelope
    message: dict[str, Any]
    model: str
    created_at: float  # epoch seconds
    received_at: float  # monotonic seconds


def route(language: str, routing: RoutingConfig) -> str:
    """The model for ``language``, the fallback, or :class:`UnknownLanguage`."""
    if language in routing.languages:
        return f"{routing.model_prefix}{language}"
    if routing.fallback_model:
        return routing.fallback_model
    raise UnknownLanguage(f"no model for language {language!r} and no fallback configured")


def parse(envelope: Envelope, routing: RoutingConfig) -> ClipRequest:
    """Validate one message; raises a :class:`BadMessage` naming what is wrong."""
    message = parse_json_object(envelope)
    for name in REQUIRED_FIELDS:
        if name not in message or message[name] in (None, ""):
            raise MissingField(f"missing field {name!r}")
        if not isinstance(message[name], str):
            raise InvalidField(f"field {name!r} must be a string")
    media = [name for name in ("audio_url", "audio_b64") if message.get(name)]
    if not media:
        raise MissingField("one of 'audio_url' or 'audio_b64' is required")
    if any(not isinstance(message[name], str) for name in media):
        raise InvalidField("audio_url and audio_b64 must be strings")
    return ClipRequest(envelope, message, route(message["language"], routing),
                       parse_time(message.get("created_at"), "created_at", envelope),
                       time.monotonic())


class AudioPipeline(ModelPipeline[ClipRequest]):
    """Scores each clip with its language's model: one request per clip, or one multipart
    request per model and batch (``torchserve.batch_requests: true``)."""

    name = "audio"

    def parse(self, envelope: Envelope) -> ClipRequest:
        return parse(envelope, self.config.routing)

    async def process_batch(self, items: list[ClipRequest]) -> None:
        if self.config.torchserve.batch_requests:
            scored = await self._score_by_model(items)
        else:
            scored = await self.score_each(items, self._score)
        if scored:
            rows = {"audio_verdicts": [verdict for _, verdict in scored]}
            await self.spawn(self.write_results(scored, rows, self._account, "verdicts"),
                             "verdicts")

    async def _score(self, request: ClipRequest) -> dict[str, Any]:
        body = await self._fetch(request)
        return self._verdict(request, await self.predict(self.client, request.model, body))

    async def _score_by_model(self, items: list[ClipRequest]
                              ) -> list[tuple[ClipRequest, dict[str, Any]]]:
        """Fetch every clip, then send each model its clips in one request, all concurrently."""
        outcomes: list[Any] = await asyncio.gather(*(self._fetch(item) for item in items),
                                                   return_exceptions=True)
        by_model: dict[str, list[int]] = {}
        for index, (item, body) in enumerate(zip(items, outcomes)):
            if not isinstance(body, BaseException):
                by_model.setdefault(item.model, []).append(index)

        async def score(model: str, indices: list[int]) -> None:
            try:
                results = await self.predict_batch(self.client, model,
                                                   [outcomes[i] for i in indices])
            except Exception as error:  # noqa: BLE001 - a failed request fails each of its items
                results = [error] * len(indices)
            for index, result in zip(indices, results, strict=True):
                outcomes[index] = (result if isinstance(result, BaseException)
                                   else self._try_verdict(items[index], result))

        await asyncio.gather(*(score(model, indices) for model, indices in by_model.items()))
        return await self.settle(items, outcomes)

    async def _fetch(self, request: ClipRequest) -> bytes:
        message = request.message
        if message.get("audio_b64"):
            return self.fetcher.decode_inline(message["audio_b64"])
        return await self.fetcher.fetch(message["audio_url"])

    def _try_verdict(self, request: ClipRequest, result: dict[str, Any]
                     ) -> dict[str, Any] | VigilError:
        try:
            return self._verdict(request, result)
        except VigilError as error:
            return error

    def _verdict(self, request: ClipRequest, result: dict[str, Any]) -> dict[str, Any]:
        """The verdict row for ``request`` from its model's answer."""
        model = request.model
        return {
            **{k: v for k, v in request.message.items() if k != "audio_b64"},
            "model": str(result.get("model", model)),
            "model_version": str(result.get("model_version", "")),
            "score": answers.probability(result, "score", model),
            "label": answers.label(result, "label", LABELS, model),
            "threshold": answers.probability(result, "threshold", model),
            "latency_ms": round((time.monotonic() - request.received_at) * 1000),
            "scored_at": iso_utc(),
        }

    def _account(self, request: ClipRequest, verdict: dict[str, Any]) -> None:
        self.metrics.verdicts.labels(self.name, verdict["label"]).inc()
        self.metrics.end_to_end.labels(self.name).observe(max(0.0, time.time() - request.created_at))
