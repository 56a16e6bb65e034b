"""Handler for the ``audio_nsfw`` family: one encoded clip per request -> P(nsfw).

The response per clip is ``{"score", "label", "threshold", "model", "model_version",
"engine", "precision", "scored_by", "level_dbfs", "screen_score"}``; the threshold and names
come from the handler section of the archive's model-config.yaml. ``scored_by`` says what
scored the clip: ``model``; ``energy_gate`` for a clip with nothing audible in it
(``energy_gate_dbfs`` in the handler settings; off when absent); or ``screen`` for a clip the
archive's screening model scored under its threshold (``screen`` in the settings, the model
in ``screen.pt``: handlers/screen.py). Neither of the last two reaches the model; both score 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from handlers.audio_io import DEFAULT_MAX_DECODE_S, ClipDecoder
from handlers.batch_handler import BatchHandler, PreparedBatch, Rows, run_in_chunks
from handlers.energy import EnergyGate
from handlers.errors import BadInput
from handlers.screen import SCREEN_FILE, Screen, check_settings

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
        screen = self.settings.get("screen")
        self.screen = None if screen is None else Screen(
            Path(model_dir) / SCREEN_FILE, check_settings(screen), self.device)

    def example_input(self) -> Rows:
        return Rows((torch.zeros(1, self.decoder.clip_samples),))

    def warm_up(self, batch_size: int) -> None:
        super().warm_up(batch_size)
        if self.screen is not None:  # TorchScript optimises its graph on the first calls
            clip = self.example_input().inputs[0].to(self.device)
            for size in (1, max(1, batch_size), max(1, batch_size)):
                self.screen.scores(clip.expand(size, -1))

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

    def run_model(self, prepared: PreparedBatch) -> list[torch.Tensor]:
        if self.screen is not None:
            self.screen_out(prepared)
        return super().run_model(prepared)

    def screen_out(self, prepared: PreparedBatch) -> None:
        """Score the clips that reach this stage with the screen, and empty the rows of
        those under its threshold, so the model runs on the rest only."""
        waiting = [rows for rows in prepared.decoded if rows.count]
        if not waiting:
            return
        clips = torch.cat([rows.inputs[0] for rows in waiting]).to(self.device)
        for rows, score in zip(waiting, run_in_chunks(self.screen.scores, (clips,),
                                                      self.max_rows).tolist()):
            rows.info["screen_score"] = score
            if not self.screen.passes(score):
                rows.inputs = (rows.inputs[0][:0],)
                rows.info["scored_by"] = "screen"

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
            if "screen_score" in info:
                result["screen_score"] = info["screen_score"]
            results.append(result)
        return results
