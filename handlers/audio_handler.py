"""Handler for the ``audio_nsfw`` family: one encoded clip per request -> P(nsfw).

The response per clip is ``{"score", "label", "threshold", "model", "model_version"}``;
the threshold and names come from the handler section of the archive's model-config.yaml.
"""

from __future__ import annotations

from typing import Any

import torch

from handlers.audio_io import DEFAULT_MAX_DECODE_S, ClipDecoder
from handlers.batch_handler import BatchHandler, Rows
from handlers.errors import BadInput

SAMPLE_RATE_HZ = 16_000
CLIP_SECONDS = 20


class AudioNsfwHandler(BatchHandler):
    """Decodes clips (any format, rate, channel count) and scores them in one batch."""

    def setup(self, model_dir: str) -> None:
        rate = int(self.settings.get("sample_rate", SAMPLE_RATE_HZ))
        seconds = float(self.settings.get("clip_seconds", CLIP_SECONDS))
        self.decoder = ClipDecoder(
            sample_rate=rate, clip_samples=int(rate * seconds),
            max_decode_s=float(self.settings.get("max_decode_s", DEFAULT_MAX_DECODE_S)))
        self.threshold = float(self.settings.get("threshold", 0.5))

    def example_input(self) -> Rows:
        return Rows((torch.zeros(1, self.decoder.clip_samples),))

    def decode(self, body: Any) -> Rows:
        if not isinstance(body, (bytes, bytearray)):
            raise BadInput("send the encoded clip as the raw request body", status=415)
        return Rows((self.decoder.decode(bytes(body)).unsqueeze(0),))

    def postprocess(self, outputs: list[torch.Tensor], infos: list[dict]) -> list[dict[str, Any]]:
        results = []
        for score in torch.cat(outputs).float().cpu().tolist():
            label = "nsfw" if score >= self.threshold else "safe"
            results.append(
                {"score": score, "label": label, "threshold": self.threshold, **self.identity}
            )
        return results
