"""The VRT extractors as one call: a post's media and text → an embedding per modality.

Which extractor feeds which modality of the fusion head, and what each extractor accepts
(an image, a video, an audio track, text), come from the catalogue. Used by the VRT daemon
and by ``vigil embed`` (training data), so both embed the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from orchestrator.catalogue import Catalogue, ModelEntry
from orchestrator.serving import answers

Predict = Callable[[ModelEntry, bytes], Awaitable[Any]]


class Extractors:
    """The fusion head and its extractors, called concurrently for one post."""

    def __init__(self, predict: Predict, fusion: ModelEntry,
                 extractors: Mapping[str, ModelEntry]) -> None:
        self.predict = predict
        self.fusion = fusion
        self.extractors = dict(extractors)

    @classmethod
    def from_catalogue(cls, predict: Predict, catalogue: Catalogue,
                       fusion_name: str = "") -> Extractors:
        """The live fusion archive (``fusion_name``, or the only one) and the live extractor
        archives its ``sources`` name; raises :class:`~orchestrator.errors.ConfigError`."""
        fusion = catalogue.only("vrt_fusion", fusion_name)
        return cls(predict, fusion, {modality: catalogue.live(name)
                                     for modality, name in fusion.sources.items()})

    @property
    def models(self) -> list[ModelEntry]:
        return [self.fusion, *self.extractors.values()]

    async def embed(self, media: bytes | None, kind: str | None,
                    text: str | None) -> dict[str, list[float] | None]:
        """Embeddings per modality: ``None`` where the post has none for it (or the video
        has no audio track). ``kind`` says what ``media`` is: ``image`` or ``video``."""
        inputs = {"text": orjson.dumps({"text": text}) if text is not None else None}
        if media is not None and kind is not None:
            inputs[kind] = media
        calls = {}
        for modality, model in self.extractors.items():
            body = next((inputs[k] for k in model.accepts if inputs.get(k) is not None), None)
            if body is not None:
                calls[modality] = self.predict(model, body)
        results = dict(zip(calls, await asyncio.gather(*calls.values())))
        # A non-finite embedding must never reach the fusion head: fused, it makes a NaN
        # score, which reads as "safe".
        return {modality: answers.embedding(results[modality], model.name)
                if modality in results else None
                for modality, model in self.extractors.items()}

    async def fuse(self, embeddings: Mapping[str, list[float] | None]) -> Any:
        return await self.predict(self.fusion, orjson.dumps(dict(embeddings)))
