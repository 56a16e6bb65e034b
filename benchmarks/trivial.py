"""A model so cheap that the serving path around it is what a benchmark measures."""

from __future__ import annotations

import torch
from torch import nn

SAMPLE_RATE_HZ = 16_000
CLIP_SECONDS = 1


class TrivialScorer(nn.Module):
    """Waveform ``(B, T)`` -> a score in (0, 1) from its mean level: microseconds per batch,
    with the audio archives' input, output and handler, so only the model's cost is gone."""

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(waveforms.abs().mean(dim=-1))

    def example(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(batch, SAMPLE_RATE_HZ * CLIP_SECONDS, generator=generator)

    def handler_settings(self) -> dict:
        return {"sample_rate": SAMPLE_RATE_HZ, "clip_seconds": CLIP_SECONDS}

    def labels(self) -> list[str]:
        return ["safe", "nsfw"]
