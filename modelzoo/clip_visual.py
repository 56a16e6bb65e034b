"""CLIP visual tower (open_clip) as a traceable frame encoder.

Frames come in already resized and normalised ``(N, 3, S, S)``; L2-normalised embeddings
``(N, D)`` come out. The handler averages them per post. Real checkpoints load through
open_clip (``create_model(name, pretrained=tag or local file)``); ``tiny`` registers a small
config with open_clip so the same factory builds it, with random weights.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import torch
from torch import nn

from modelzoo import quiet

TINY_NAME = "vigil-tiny-clip"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16,
                   "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 32, "heads": 2,
                 "layers": 1},
}


class ClipVisualEncoder(nn.Module):
    """Normalised frames ``(N, 3, S, S)`` -> unit-length embeddings ``(N, D)``."""

    def __init__(self, visual: nn.Module, *, embedding_dim: int, image_size: int,
                 mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.visual = visual
        self.embedding_dim = embedding_dim
        self.image_size = image_size
        self.mean, self.std = tuple(mean), tuple(std)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.visual(frames), dim=-1)

    def handler_settings(self) -> dict:
        return {"embedding_dim": self.embedding_dim, "image_size": self.image_size,
                "mean": list(self.mean), "std": list(self.std)}

    def example(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(batch, 3, self.image_size, self.image_size, generator=generator)


def _wrap(model: nn.Module) -> ClipVisualEncoder:
    visual = model.visual.eval()
    preprocess = getattr(visual, "preprocess_cfg", {})
    size = visual.image_size
    return ClipVisualEncoder(
        visual, embedding_dim=int(visual.output_dim),
        image_size=int(size[0] if isinstance(size, (tuple, list)) else size),
        mean=tuple(preprocess.get("mean", (0.48145466, 0.4578275, 0.40821073))),
        std=tuple(preprocess.get("std", (0.26862954, 0.26130258, 0.27577711))))


def from_checkpoint(name: str, pretrained: str) -> ClipVisualEncoder:
    """open_clip model ``name`` (e.g. ``ViT-L-14``) with weights from a tag or local file."""
    import open_clip

    return _wrap(open_clip.create_model(name, pretrained=pretrained))


def from_size(size: str, seed: int = 0) -> ClipVisualEncoder:
    """Random weights; only ``tiny`` is defined (tests, demo)."""
    import open_clip

    if size != "tiny":
        raise ValueError(f"no {size!r} CLIP config; give a checkpoint for real models")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / f"{TINY_NAME}.json").write_text(json.dumps(TINY_CONFIG))
        open_clip.add_model_config(folder)
    torch.manual_seed(seed)
    # open_clip warns on the root logger that no pretrained weights were loaded: for a
    # random-weight dev model that is the point.
    with quiet.root_logger_at(logging.ERROR):
        return _wrap(open_clip.create_model(TINY_NAME, pretrained=None))
