"""The VRT fusion head: ``[visual | text | audio | presence flags]`` -> 7-class softmax.

Input sizes come from the extractor archives (their ``embedding_dim``), never from
constants. An absent modality arrives as zeros with its presence flag at 0, so the head
learns what "no audio track" or "no caption" means instead of crashing on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from handlers.fusion_input import MODALITIES

DEFAULT_LABELS = ("safe", "nudity", "sexual", "violence", "gore", "abusive", "hate")


class FusionHead(nn.Module):
    def __init__(self, dims: Mapping[str, int], labels: Sequence[str] = DEFAULT_LABELS,
                 hidden: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.dims = {m: int(dims[m]) for m in MODALITIES}
        self.class_names = list(labels)
        self.hidden = hidden
        width = sum(self.dims.values()) + len(MODALITIES)
        self.net = nn.Sequential(
            nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden // 2), nn.ReLU(), nn.Linear(hidden // 2, len(self.class_names)))
        self.input_width = width

    def logits(self, rows: torch.Tensor) -> torch.Tensor:
        return self.net(rows)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(rows), dim=-1)

    def handler_settings(self) -> dict:
        return {"dims": dict(self.dims), "safe_label": self.class_names[0]}

    def labels(self) -> list[str]:
        return list(self.class_names)

    def example(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        rows = torch.randn(batch, self.input_width, generator=generator)
        rows[:, -len(MODALITIES):] = 1.0
        return rows

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"dims": self.dims, "labels": self.class_names, "hidden": self.hidden,
                    "state": self.state_dict()}, path)


def from_checkpoint(path: str) -> FusionHead:
    """A head trained by ``vigil train vrt``."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    head = FusionHead(saved["dims"], saved["labels"], saved["hidden"])
    head.load_state_dict(saved["state"])
    return head.eval()


def random_head(dims: Mapping[str, int], seed: int = 0) -> FusionHead:
    torch.manual_seed(seed)
    return FusionHead(dims).eval()
