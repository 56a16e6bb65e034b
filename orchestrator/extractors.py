"""The VRT extractors as one call: a post's media and text -> its embeddings per modality.

Used by the VRT daemon and by ``vigil embed`` (training data), so both embed the same way.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from orchestrator import answers
from orchestrator.config import VrtConfig

MODALITIES = ("visual", "text", "audio")
Predict = Callable[[str, bytes], Awaitable[dict[str, Any]]]


class Extractors:
    """Calls the visual, audio and text archives concurrently for one post."""

    def __init__(self, predict: Predict, models: VrtConfig) -> None:
        self.predict = predict
        self.models = models

    async def embed(self, media: bytes | None, is_video: bool, text: str | None
                    ) -> dict[str, list[float] | None]:
        """Embeddings per modality; ``None`` where the post has none (or no audio track)."""
        calls: dict[str, Awaitable[dict[str, Any]]] = {}
        if media is not None:
            calls["visual"] = self.predict(self.models.visual_model, media)
            if is_video:
                calls["audio"] = self.predict(self.models.audio_model, media)
        if text is not None:
            body = json.dumps({"text": text}, ensure_ascii=False).encode()
            calls["text"] = self.predict(self.models.text_model, body)
        results = dict(zip(calls, await asyncio.gather(*calls.values())))
        models = {"visual": self.models.visual_model, "text": self.models.text_model,
                  "audio": self.models.audio_model}
        # A non-finite embedding must never reach the fusion head: it would fuse into a
        # NaN score, which reads as "safe".
        return {m: answers.embedding(results[m], models[m]) if m in results else None
                for m in MODALITIES}

    async def fuse(self, embeddings: dict[str, list[float] | None]) -> dict[str, Any]:
        return await self.predict(self.models.fusion_model, json.dumps(embeddings).encode())
