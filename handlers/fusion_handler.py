"""Handler for ``vrt_fusion``: a post's embeddings (JSON ``{"visual", "text", "audio"}``, any
of them null) -> 7 category probabilities, the NSFW score ``1 - p(safe)`` and the top one."""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from handlers.batch_handler import BatchHandler, Rows
from handlers.errors import BadInput
from handlers.fusion_input import EmbeddingSizeMismatch, fusion_row


class VrtFusionHandler(BatchHandler):
    def setup(self, model_dir: str) -> None:
        self.dims = {k: int(v) for k, v in self.settings["dims"].items()}
        with open(os.path.join(model_dir, "index_to_name.json")) as names:
            mapping = json.load(names)
        self.labels = [mapping[str(i)] for i in range(len(mapping))]
        self.safe = self.labels.index(self.settings.get("safe_label", "safe"))

    def example_input(self) -> Rows:
        return Rows((fusion_row({}, self.dims).unsqueeze(0),))

    def decode(self, body: Any) -> Rows:
        if isinstance(body, (bytes, bytearray)):
            try:
                body = json.loads(bytes(body))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise BadInput(f"invalid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise BadInput("send a JSON object with visual, text and audio embeddings")
        try:
            row = fusion_row(body, self.dims)
        except (EmbeddingSizeMismatch, TypeError, ValueError, RuntimeError) as exc:
            raise BadInput(f"bad embeddings: {exc}") from exc
        if not bool(torch.isfinite(row).all()):
            # json.loads reads NaN and Infinity: fused, they would make a NaN score.
            raise BadInput("bad embeddings: non-finite values (NaN or ±Inf)")
        return Rows((row.unsqueeze(0),))

    def postprocess(self, outputs: list[torch.Tensor], infos: list[dict]) -> list[dict[str, Any]]:
        results = []
        for rows in outputs:
            probabilities = rows[0].float().cpu().tolist()
            top = max(range(len(probabilities)), key=probabilities.__getitem__)
            results.append({"categories": dict(zip(self.labels, probabilities)),
                            "score": 1.0 - probabilities[self.safe],
                            "top_category": self.labels[top], **self.identity})
        return results
