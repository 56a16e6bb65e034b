"""Optional frame enhancement before CLIP (per archive, off by default): CLAHE on the
lightness of dark frames, and non-local-means denoising, both from OpenCV. Runs after the
resize, on ``image_size`` frames, where it is cheapest; see docs/BENCHMARKS.md for its cost."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class FrameEnhancer:
    """uint8 frames ``(F, 3, H, W)`` in, the same shape out."""

    def __init__(self, *, clahe: bool = False, denoise: bool = False, dark_below: float = 80.0,
                 clip_limit: float = 2.0, denoise_strength: float = 5.0) -> None:
        import cv2  # only archives that enable enhancement need OpenCV

        self.cv2 = cv2
        self.clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(8, 8)) if clahe else None
        self.denoise = denoise
        self.dark_below = dark_below
        self.denoise_strength = denoise_strength

    @classmethod
    def from_settings(cls, settings: dict[str, Any] | None) -> FrameEnhancer | None:
        """The enhancer an archive's ``enhance`` handler setting asks for, or None."""
        if not settings or not (settings.get("clahe") or settings.get("denoise")):
            return None
        return cls(**settings)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        images = frames.permute(0, 2, 3, 1).contiguous().numpy()
        return torch.from_numpy(np.stack([self._one(image) for image in images])).permute(0, 3, 1, 2)

    def _one(self, image: np.ndarray) -> np.ndarray:
        cv2 = self.cv2
        if self.clahe is not None:
            lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
            lightness, a, b = cv2.split(lab)
            if lightness.mean() < self.dark_below:
                image = cv2.cvtColor(cv2.merge((self.clahe.apply(lightness), a, b)),
                                     cv2.COLOR_LAB2RGB)
        if self.denoise:
            strength = self.denoise_strength
            image = cv2.fastNlMeansDenoisingColored(image, None, strength, strength, 7, 21)
        return image
