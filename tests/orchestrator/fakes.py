"""In-memory stand-ins for the flow's seams (pure logic only: anything that claims a
service works is tested against the service, under tests/integration)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from orchestrator.catalogue import Catalogue, ModelEntry
from orchestrator.config import QualityConfig
from orchestrator.errors import reason_of
from orchestrator.flow import Failure
from orchestrator.messages import Envelope
from orchestrator.metrics import Metrics
from orchestrator.monitoring import AuditBook, ScoredClips
from orchestrator.pipelines.quality import QualityBook

AUDIO = [ModelEntry(name=f"audio_nsfw_{name}", version="1.0", family="audio_nsfw",
                    file=f"audio_nsfw_{name}-1.0.mar", languages=(language,),
                    labels=("safe", "nsfw"), accepts=("audio",))
         for name, language in (("hi", "hi"), ("ta", "ta"), ("multi", "*"))]
CATALOGUE = Catalogue(AUDIO, {entry.name: entry.version for entry in AUDIO})


def envelope(offset: int, partition: int = 0, topic: str = "in") -> Envelope:
    return Envelope(topic, partition, offset, f"k{offset}".encode(), f"v{offset}".encode())


@dataclass(frozen=True)
class Item:
    """A parsed message in the flow tests: its envelope and what the fake scorer does."""

    envelope: Envelope
    behaviour: str = "ok"  # ok | fail | slow


def parse(envelope: Envelope) -> Item:
    """``v<n>`` parses; ``boom`` raises what a hostile message might (RecursionError)."""
    if envelope.value == b"boom":
        raise RecursionError("maximum recursion depth exceeded")
    behaviour = (envelope.key or b"").decode().partition(":")[2] or "ok"
    return Item(envelope, behaviour)


class FakeScorer:
    """Scores items by their behaviour; ``gate`` holds ``slow`` items until it is set."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.batches: list[list[Item]] = []
        self.raise_on_batch: BaseException | None = None
        self.outcomes_short_by = 0

    async def score(self, items: Sequence[Item]) -> list[str | Failure]:
        self.batches.append(list(items))
        if self.raise_on_batch is not None:
            raise self.raise_on_batch
        outcomes: list[str | Failure] = []
        for item in items:
            if item.behaviour == "slow":
                await self.gate.wait()
            if item.behaviour == "fail":
                outcomes.append(Failure(ValueError(f"cannot score {item.envelope.offset}")))
            else:
                outcomes.append(f"result-{item.envelope.offset}")
        return outcomes[: len(outcomes) - self.outcomes_short_by]


@dataclass
class RecordingSink:
    """Records what it wrote; raises the queued errors first (one per write), and refuses
    ``refuse`` results for good whenever they are in a write."""

    written: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    calls: int = 0

    async def write(self, results: Sequence[str]) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        refused = self.refuse.intersection(results)
        if refused:
            raise ValueError(f"refused {sorted(refused)}")
        self.written.extend(results)


@dataclass
class RecordingDeadLetters:
    """Records (offset, reason); raises the queued errors first."""

    sent: list[tuple[int, str]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    always_fail: BaseException | None = None

    async def send(self, envelope: Envelope, error: BaseException) -> str:
        if self.always_fail is not None:
            raise self.always_fail
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((envelope.offset, reason_of(error)))
        return reason_of(error)


class RecordingSource:
    """Stands in for KafkaSource's pause/resume: records pause (True) and resume (False)."""

    def __init__(self) -> None:
        self.calls: list[bool] = []

    async def set_paused(self, paused: bool) -> int:
        self.calls.append(paused)
        return 3 if paused else 0


def quality_book(store: Any, config: QualityConfig) -> QualityBook:
    """The quality sink over ``store``, with metrics of its own and no audit estimates."""
    metrics = Metrics(CollectorRegistry())
    return QualityBook(store, ScoredClips(store), CATALOGUE, config, metrics,
                       AuditBook(store, config, metrics))
