"""Images and videos to CLIP-ready frames: one frame per second of video (PyAV), resized
(shortest side), centre-cropped and normalised with the model's mean and std."""

from __future__ import annotations

import io

import av
import torch
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as F

from handlers.enhance import FrameEnhancer
from handlers.errors import BadInput, MediaTooLong


def _decode_image(payload: bytes) -> torch.Tensor | None:
    try:
        image = decode_image(torch.frombuffer(bytearray(payload), dtype=torch.uint8),
                             mode=ImageReadMode.RGB)
    except RuntimeError:
        return None
    return image.unsqueeze(0)


def _duration_s(container: av.container.InputContainer, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def sample_video(payload: bytes, *, frames_per_second: float, max_seconds: float) -> torch.Tensor:
    """``(frames, 3, H, W)`` uint8: the first frame at or after each 1/fps step."""
    step = 1.0 / frames_per_second
    try:
        with av.open(io.BytesIO(payload), mode="r") as container:
            if not container.streams.video:
                raise BadInput("neither an image nor a video with a video stream", status=415)
            stream = container.streams.video[0]
            duration = _duration_s(container, stream)
            if duration is not None and duration > max_seconds:
                raise MediaTooLong(f"video is {duration:.0f} s long, over the {max_seconds:.0f} s limit")
            frames, next_time = [], 0.0
            for frame in container.decode(stream):
                moment = frame.time if frame.time is not None else next_time
                if moment > max_seconds:
                    raise MediaTooLong(f"video runs past the {max_seconds:.0f} s limit")
                if moment + 1e-6 >= next_time:
                    frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))
                    next_time += step
    except (av.FFmpegError, ValueError, IndexError, EOFError) as exc:
        if isinstance(exc, BadInput):
            raise
        raise BadInput(f"undecodable video: {exc}", status=415) from exc
    if not frames:
        raise BadInput("the video holds no frames", status=415)
    return torch.stack(frames).permute(0, 3, 1, 2)


class FramePreparer:
    """Bytes of an image or a video -> normalised frames ``(F, 3, S, S)``, and what it was."""

    def __init__(self, *, image_size: int, mean: list[float], std: list[float],
                 frames_per_second: float = 1.0, max_seconds: float = 900.0,
                 enhancer: FrameEnhancer | None = None) -> None:
        self.image_size = image_size
        self.enhancer = enhancer
        self.mean, self.std = mean, std
        self.frames_per_second = frames_per_second
        self.max_seconds = max_seconds

    def __call__(self, payload: bytes) -> tuple[torch.Tensor, str]:
        if not payload:
            raise BadInput("empty request body")
        frames = _decode_image(payload)
        kind = "image"
        if frames is None:
            frames = sample_video(payload, frames_per_second=self.frames_per_second,
                                  max_seconds=self.max_seconds)
            kind = "video"
        return self.prepare(frames), kind

    def prepare(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``(F, 3, H, W)`` -> float ``(F, 3, S, S)``, resized, cropped, normalised."""
        images = F.resize(frames, [self.image_size], antialias=True)
        images = F.center_crop(images, [self.image_size, self.image_size])
        if self.enhancer is not None:
            images = self.enhancer(images)
        return F.normalize(images.float() / 255.0, self.mean, self.std)
