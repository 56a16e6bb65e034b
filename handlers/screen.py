"""A cascade's first stage: a small screening model in front of the archive's model.

The screen (a keyword spotter about a two-hundredth of wav2vec2-base's cost, traced to
TorchScript inside the archive as ``screen.pt``) scores every clip the energy gate lets
through; only clips it scores at or above its threshold reach the archive's model. The
threshold is calibrated, when the archive is trained, to keep at least 99% of the model's
own positives on held-out and shifted clips (modelzoo/screen.py), so what the screen
answers alone is what the model would have called safe, bar the 1% it trades for the cost.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

SCREEN_FILE = "screen.pt"
SCREEN_KEYS = ("checkpoint", "threshold")


def check_settings(screen: Any) -> float:
    """The threshold of a manifest's ``screen`` entry; ValueError when the entry is malformed."""
    if not isinstance(screen, dict) or set(screen) != set(SCREEN_KEYS):
        raise ValueError(f"screen must be a mapping with exactly {list(SCREEN_KEYS)}, "
                         f"got {screen!r}")
    if not isinstance(screen["checkpoint"], str) or not screen["checkpoint"]:
        raise ValueError("screen.checkpoint must name the screening model's folder")
    try:
        threshold = float(screen["threshold"])
    except (TypeError, ValueError):
        raise ValueError(f"screen.threshold must be a number, got {screen['threshold']!r}") \
            from None
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise ValueError(f"screen.threshold must lie in [0, 1], got {threshold}")
    return threshold


class Screen:
    """The traced screening model and its threshold."""

    def __init__(self, path: Path, threshold: float, device: torch.device) -> None:
        self.model = torch.jit.load(str(path), map_location=device).eval()
        self.threshold = threshold

    def scores(self, waveforms: torch.Tensor) -> torch.Tensor:
        """P(nsfw) per clip ``(B,)`` by the screen."""
        with torch.inference_mode():
            return self.model(waveforms).float().reshape(-1)

    def passes(self, score: float) -> bool:
        return score >= self.threshold
