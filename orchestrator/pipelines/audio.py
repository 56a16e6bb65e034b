"""Livestream audio moderation: source -> parse -> batcher -> TorchServe (fan-out) -> sinks.

Each consumed message ends in exactly one of two places before its offset may be stored:
a verdict (row upserted and event acknowledged) or a dead letter with its reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from orchestrator.background import BackgroundTasks
from orchestrator.batcher import MicroBatcher
from orchestrator.config import AppConfig, RoutingConfig
from orchestrator.errors import (BadMessage, InvalidField, InvalidJson, MissingField,
                                 UnknownLanguage, VigilError)
from orchestrator.media import MediaFetcher
from orchestrator.metrics import Metrics
from orchestrator.offsets import OffsetTracker
from orchestrator.sinks import DeadLetterSink, KafkaSink, SourceRecord, encode_event
from orchestrator.source import Envelope
from orchestrator.stores import VerdictStore
from orchestrator.torchserve import TorchServeClient

logger = logging.getLogger(__name__)
PIPELINE = "audio"
REQUIRED_FIELDS = ("clip_id", "stream_id", "language")
SIDE_EFFECT_ATTEMPTS = 5


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


def _created_at(message: dict[str, Any], envelope: Envelope) -> float:
    stamp = message.get("created_at")
    if isinstance(stamp, str):
        try:
            parsed = datetime.fromisoformat(stamp)
        except ValueError as exc:
            raise InvalidField(f"created_at is not ISO 8601: {stamp[:50]!r}") from exc
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
    if envelope.timestamp_ms:
        return envelope.timestamp_ms / 1000
    return time.time()


def parse(envelope: Envelope, routing: RoutingConfig) -> ClipRequest:
    """Validate one message; raises a :class:`BadMessage` naming what is wrong."""
    try:
        message = json.loads(envelope.value or b"")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidJson(f"value is not UTF-8 JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise InvalidJson(f"value is JSON {type(message).__name__}, not an object")
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
                       _created_at(message, envelope), time.monotonic())


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AudioPipeline:
    """Composes the stages; owns no I/O of its own."""

    def __init__(self, *, config: AppConfig, tracker: OffsetTracker, batcher: MicroBatcher,
                 client: TorchServeClient, fetcher: MediaFetcher, store: VerdictStore,
                 producer: KafkaSink, dead_letters: DeadLetterSink,
                 side_effects: BackgroundTasks, metrics: Metrics) -> None:
        self.config = config
        self.tracker = tracker
        self.batcher = batcher
        self.client = client
        self.fetcher = fetcher
        self.store = store
        self.producer = producer
        self.dead_letters = dead_letters
        self.side_effects = side_effects
        self.metrics = metrics
        self._batches: set[asyncio.Task] = set()

    # -- intake -------------------------------------------------------------------------------
    async def intake(self, envelope: Envelope) -> None:
        """Parse one message and queue it for a batch, or dead-letter it."""
        self.metrics.messages_consumed.labels(PIPELINE).inc()
        try:
            request = parse(envelope, self.config.routing)
        except BadMessage as error:
            await self.side_effects.spawn(self._dead_letter(envelope, error), "dead_letter")
            return
        await self.batcher.put(request)

    # -- fan-in, fan-out ----------------------------------------------------------------------
    async def run(self) -> None:
        """Score batches until the batcher is closed and drained, then wait for them."""
        async for batch in self.batcher.batches():
            self.metrics.batch_size.observe(len(batch.items))
            self.metrics.batch_wait.observe(batch.waited_s)
            task = asyncio.create_task(self._score_batch(batch.items))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
        await asyncio.gather(*self._batches, return_exceptions=True)

    async def _score_batch(self, requests: list[ClipRequest]) -> None:
        outcomes = await asyncio.gather(*(self._score(r) for r in requests),
                                        return_exceptions=True)
        if len(outcomes) != len(requests):
            raise RuntimeError("a batch must give back one outcome per item")
        verdicts = []
        for request, outcome in zip(requests, outcomes):
            if isinstance(outcome, BaseException):
                await self.side_effects.spawn(
                    self._dead_letter(request.envelope, outcome), "dead_letter")
            else:
                verdicts.append((request, outcome))
        if verdicts:
            await self.side_effects.spawn(self._write_verdicts(verdicts), "verdicts")

    async def _score(self, request: ClipRequest) -> dict[str, Any]:
        message = request.message
        if message.get("audio_b64"):
            body = self.fetcher.decode_inline(message["audio_b64"])
        else:
            body = await self.fetcher.fetch(message["audio_url"])
        started = time.monotonic()
        result = await self.client.predict(request.model, body)
        self.metrics.inference.labels(request.model).observe(time.monotonic() - started)
        try:
            score = float(result["score"])
            return {
                **{k: v for k, v in message.items() if k != "audio_b64"},
                "model": result.get("model", request.model),
                "model_version": str(result.get("model_version", "")),
                "score": score,
                "label": result["label"],
                "threshold": float(result["threshold"]),
                "latency_ms": round((time.monotonic() - request.received_at) * 1000),
                "scored_at": _now_iso(),
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise VigilError(f"unexpected model response {str(result)[:200]}") from exc

    # -- side effects -------------------------------------------------------------------------
    async def _write_verdicts(self, verdicts: list[tuple[ClipRequest, dict[str, Any]]]) -> None:
        """Upsert the rows and produce the events; then, and only then, finish the offsets."""
        try:
            await self._with_retries(self.store.upsert_audio_verdicts, [v for _, v in verdicts])
            await asyncio.gather(*(
                self._with_retries(self.producer.produce, self.config.kafka.output_topic,
                                   encode_event(verdict), request.envelope.key)
                for request, verdict in verdicts
            ))
        except Exception as error:  # noqa: BLE001 - any failure dead-letters, never drops
            self.metrics.side_effect_errors.labels("verdicts").inc()
            for request, _ in verdicts:
                await self._dead_letter(request.envelope, error)
            return
        now = time.time()
        for request, verdict in verdicts:
            self.metrics.verdicts.labels(PIPELINE, verdict["label"]).inc()
            self.metrics.end_to_end.labels(PIPELINE).observe(max(0.0, now - request.created_at))
            self.tracker.finish(request.envelope.position, request.envelope.offset)

    async def _dead_letter(self, envelope: Envelope, error: BaseException) -> None:
        record = SourceRecord(envelope.topic, envelope.partition, envelope.offset,
                              envelope.key, envelope.value)
        reason = await self._with_retries(self.dead_letters.send, record, error)
        logger.info("dead letter %s:%d@%d: %s: %s", envelope.topic, envelope.partition,
                    envelope.offset, reason, error)
        self.metrics.dead_letters.labels(PIPELINE, reason).inc()
        self.tracker.finish(envelope.position, envelope.offset)

    async def _with_retries(self, function, *args):
        delay = 0.1
        for attempt in range(1, SIDE_EFFECT_ATTEMPTS + 1):
            try:
                return await function(*args)
            except Exception:
                if attempt == SIDE_EFFECT_ATTEMPTS:
                    raise
                self.metrics.retries.labels(PIPELINE).inc()
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")
