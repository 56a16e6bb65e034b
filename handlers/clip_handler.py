"""Handler for ``clip_visual``: an image or a video per request -> one visual embedding.

A video is sampled at ``frames_per_second`` (default 1); the response is the L2-normalised
mean of the frames' (unit-length) embeddings, with the frame count:
``{"embedding", "frames", "kind", "embedding_dim", "model", "model_version"}``.
"""

from __future__ import annotations

from typing import Any

import torch

from handlers.batch_handler import BatchHandler, Rows
from handlers.enhance import FrameEnhancer
from handlers.errors import BadInput
from handlers.visual_io import (DEFAULT_MAX_DECODE_S, DEFAULT_MAX_FRAMES, DEFAULT_MAX_PIXELS,
                                FramePreparer)


def mean_embedding(frame_embeddings: torch.Tensor) -> torch.Tensor:
    """The unit-length mean of a post's frame embeddings."""
    return torch.nn.functional.normalize(frame_embeddings.float().mean(dim=0), dim=0)


class ClipVisualHandler(BatchHandler):
    def setup(self, model_dir: str) -> None:
        self.frames = FramePreparer(
            image_size=int(self.settings["image_size"]), mean=self.settings["mean"],
            std=self.settings["std"],
            frames_per_second=float(self.settings.get("frames_per_second", 1.0)),
            max_seconds=float(self.settings.get("max_video_s", 900)),
            max_pixels=int(self.settings.get("max_pixels", DEFAULT_MAX_PIXELS)),
            max_decode_s=float(self.settings.get("max_decode_s", DEFAULT_MAX_DECODE_S)),
            max_frames=int(self.settings.get("max_frames", DEFAULT_MAX_FRAMES)),
            enhancer=FrameEnhancer.from_settings(self.settings.get("enhance")))

    def example_input(self) -> Rows:
        size = self.frames.image_size
        return Rows((torch.zeros(1, 3, size, size),))

    def decode(self, body: Any) -> Rows:
        if not isinstance(body, (bytes, bytearray)):
            raise BadInput("send the image or video as the raw request body", status=415)
        frames, kind = self.frames(bytes(body))
        return Rows((frames,), {"frames": int(frames.shape[0]), "kind": kind})

    def postprocess(self, outputs: list[torch.Tensor], infos: list[dict]) -> list[dict[str, Any]]:
        return [{"embedding": mean_embedding(rows).cpu().tolist(), **info,
                 "embedding_dim": int(rows.shape[1]), **self.identity}
                for rows, info in zip(outputs, infos)]
