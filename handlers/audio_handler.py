"""Handler for the ``audio_nsfw`` family: one encoded clip per request -> P(nsfw).

The response per clip is ``{"score", "label", "threshold", "model", "model_version",
"engine", "precision", "scored_by", "level_dbfs"}``; the threshold and names come from the
handler section of the archive's model-config.yaml. ``scored_by`` says what scored the clip:
``model``, or ``energy_gate`` for a clip with nothing audible in it (``energy_gate_dbfs`` in
the handler settings; off when absent), which never reaches the model and scores 0.
"""

from __future__ import annotations

from typing import Any

import torch

from handlers.audio_io import DEFAULT_MAX_DECODE_S, ClipDecoder
from handlers.batch_handler import BatchHandler, Rows
from handlers.energy import EnergyGate
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
        floor = self.settings.get("energy_gate_dbfs")
        self.gate = None if floor is None else EnergyGate(float(floor), rate)

    def example_input(self) -> Rows:
        return Rows((torch.zeros(1, self.decoder.clip_samples),))

    def decode(self, body: Any) -> Rows:
        if not isinstance(body, (bytes, bytearray)):
            raise BadInput("send the encoded clip as the raw request body", status=415)
        clip = self.decoder.decode(bytes(body)).unsqueeze(0)
        if self.gate is None:
            return Rows((clip,))
        level = self.gate.level(clip[0])
        if self.gate.passes(level):
            return Rows((clip,), {"level_dbfs": level})
        return Rows((clip[:0],), {"level_dbfs": level, "scored_by": "energy_gate"})

    def postprocess(self, outputs: list[torch.Tensor], infos: list[dict]) -> list[dict[str, Any]]:
        results = []
        for output, info in zip(outputs, infos):
            scored_by = info.get("scored_by", "model")
            score = float(output.float().reshape(-1)[0]) if scored_by == "model" else 0.0
            label = "nsfw" if score >= self.threshold else "safe"
            result = {"score": score, "label": label, "threshold": self.threshold,
                      **self.identity, "scored_by": scored_by}
            if "level_dbfs" in info:
                result["level_dbfs"] = round(info["level_dbfs"], 1)
            results.append(result)
        return results
