"""Handler for ``vggish_audio``: an audio file or a video's audio track -> the mean VGGish
embedding over its 0.96 s examples. A video without an audio track is not an error: the
response has ``"embedding": null`` and the reason, so the fusion head sees a missing modality."""

from __future__ import annotations

from typing import Any

import torch

from handlers.audio_io import DEFAULT_MAX_DECODE_S, ClipDecoder
from handlers.batch_handler import BatchHandler, Rows
from handlers.errors import BadInput, NoAudioStream
from handlers.vggish_frontend import BANDS, EXAMPLE_FRAMES, SAMPLE_RATE_HZ, LogMelExamples


class VggishAudioHandler(BatchHandler):
    def setup(self, model_dir: str) -> None:
        seconds = float(self.settings.get("max_audio_s", 900))
        self.decoder = ClipDecoder(
            sample_rate=SAMPLE_RATE_HZ, clip_samples=int(seconds * SAMPLE_RATE_HZ),
            max_decode_s=float(self.settings.get("max_decode_s", DEFAULT_MAX_DECODE_S)))
        self.frontend = LogMelExamples()

    def example_input(self) -> Rows:
        return Rows((torch.zeros(1, 1, EXAMPLE_FRAMES, BANDS),))

    def decode(self, body: Any) -> Rows:
        if not isinstance(body, (bytes, bytearray)):
            raise BadInput("send the audio or video as the raw request body", status=415)
        try:
            waveform = self.decoder.samples(bytes(body))
        except NoAudioStream:
            return Rows((torch.zeros(0, 1, EXAMPLE_FRAMES, BANDS),), {"reason": "no audio track"})
        examples = self.frontend(waveform)
        return Rows((examples,), {"seconds": round(waveform.shape[0] / SAMPLE_RATE_HZ, 2)})

    def postprocess(self, outputs: list[torch.Tensor], infos: list[dict]) -> list[dict[str, Any]]:
        dim = int(self.settings["embedding_dim"])
        results = []
        for rows, info in zip(outputs, infos):
            embedding = rows.float().mean(dim=0).cpu().tolist() if rows.numel() else None
            results.append({"embedding": embedding, "examples": int(rows.shape[0]),
                            "embedding_dim": dim, **info, **self.identity})
        return results
