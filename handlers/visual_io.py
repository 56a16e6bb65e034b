"""Images and videos to CLIP-ready frames: one frame per second of video (PyAV), resized
(shortest side), centre-cropped and normalised with the model's mean and std.

What an input costs is bounded before it is paid, so one hostile post cannot hold or kill a
worker:

- an image's dimensions are read from its header (Pillow) before anything is decoded, and
  anything over ``max_pixels`` is refused (413): a 110 KB PNG can declare 900 Mpx;
- a progressive JPEG's scans are counted before decoding (each scan walks the whole image
  again: 30,000 repeats of a 31-byte scan take minutes); over ``MAX_JPEG_SCANS`` is a 413;
- the output is bounded as well as the input: a frame longer than ``MAX_ASPECT`` times its
  short side is cropped to that before it is resized (the centre crop would drop the rest
  anyway), so a 4 × 1,000,000 image never becomes 224 × 56,000,000;
- an animated image goes the video way, one frame per second, not every frame at once;
- a video's frames are scaled down to the model's size as they are decoded, so memory grows
  with the number of frames kept, not with the resolution, and at most ``max_frames`` are
  kept (a longer video is sampled more sparsely);
- every decode runs under ``max_decode_s``: a video is checked between frames, a still image
  is decoded on a thread of its own and answered with a 413 when it overruns (the thread
  finishes in the background, its cost bounded by the checks above).
"""

from __future__ import annotations

import io
import threading
import time
import warnings
from collections.abc import Callable
from typing import TypeVar

import av
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as F

from handlers.enhance import FrameEnhancer
from handlers.errors import BadInput, MediaTooLong, OverLimit

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_DECODE_S = 5.0
DEFAULT_MAX_FRAMES = 900  # 15 minutes at one frame a second
MAX_JPEG_SCANS = 64  # libjpeg's own progressive scripts use 10
MAX_ASPECT = 4.0
T = TypeVar("T")


def check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    """Raise :class:`OverLimit` (413) when ``width × height`` passes ``max_pixels``."""
    if width * height > max_pixels:
        raise OverLimit(f"{what} is {width}x{height} = {width * height / 1e6:.0f} Mpx, over "
                        f"the {max_pixels / 1e6:.0f} Mpx pixel limit")


def image_header(payload: bytes, max_pixels: int) -> Image.Image | None:
    """The image's header (nothing decoded yet), or None when it is not an image Pillow
    knows (a video, or garbage). Raises :class:`OverLimit` for too many pixels."""
    try:
        with warnings.catch_warnings():
            # Vigil's own limit applies, below Pillow's warning level.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            header = Image.open(io.BytesIO(payload))
    except Image.DecompressionBombError as exc:
        raise OverLimit(f"image over the pixel limit: {exc}") from exc
    except (OSError, ValueError, SyntaxError):  # Pillow's "not an image I can identify"
        return None
    check_pixels(*header.size, max_pixels, "the image")
    return header


def check_scans(header: Image.Image, payload: bytes) -> None:
    """Raise :class:`OverLimit` for a JPEG of more than :data:`MAX_JPEG_SCANS` scans.

    A scan starts at an SOS marker (``FF DA``); inside entropy-coded data a ``FF`` byte is
    always stuffed, so counting the marker's bytes counts scans (and, at worst, also one
    in an embedded thumbnail): never fewer than there are.
    """
    if header.format == "JPEG":
        scans = payload.count(b"\xff\xda")
        if scans > MAX_JPEG_SCANS:
            raise OverLimit(f"the JPEG has {scans} scans, over the limit of {MAX_JPEG_SCANS}")


def within(seconds: float, work: Callable[[], T], what: str) -> T:
    """``work()``'s result, or :class:`OverLimit` once it has run ``seconds``: for decoders
    that cannot be interrupted. The work runs on a thread of its own and, when it overruns,
    finishes there unobserved; what it may cost is bounded before it starts."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="decode", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise OverLimit(f"decoding {what} took over {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def _decode_image(payload: bytes) -> torch.Tensor | None:
    """The still as ``(1, 3, H, W)``, or None for a format torchvision does not decode
    (FFmpeg may: BMP, TIFF, ...)."""
    try:
        image = decode_image(torch.frombuffer(bytearray(payload), dtype=torch.uint8),
                             mode=ImageReadMode.RGB)
    except RuntimeError:
        return None
    return image.unsqueeze(0)


def aspect_window(height: int, width: int, max_aspect: float = MAX_ASPECT
                  ) -> tuple[slice, slice]:
    """Rows and columns of the central part of a ``height × width`` frame whose long side
    is at most ``max_aspect`` times its short side (the whole frame when it already is)."""
    short = min(height, width)
    longest = max(short, int(short * max_aspect))
    top = max(0, (height - longest) // 2)
    left = max(0, (width - longest) // 2)
    return slice(top, top + min(height, longest)), slice(left, left + min(width, longest))


def _duration_s(container: av.container.InputContainer, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def scaled_size(width: int, height: int, shortest_side: int) -> tuple[int, int]:
    """``(width, height)`` scaled down so the shorter side is ``shortest_side`` (never up)."""
    scale = min(1.0, shortest_side / min(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def sample_video(payload: bytes, *, frames_per_second: float, max_seconds: float,
                 shortest_side: int, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_decode_s: float = DEFAULT_MAX_DECODE_S,
                 max_frames: int = DEFAULT_MAX_FRAMES) -> torch.Tensor:
    """``(frames, 3, H, W)`` uint8: the first frame at or after each 1/fps step (a longer
    step where the duration would give over ``max_frames``), scaled as it is decoded so its
    shorter side is at most ``shortest_side``, its longer side at most :data:`MAX_ASPECT`
    times that.

    Raises :class:`MediaTooLong` past ``max_seconds`` of video, :class:`OverLimit` for
    frames over ``max_pixels``, more than ``max_frames`` kept or decoding past
    ``max_decode_s``, :class:`BadInput` else.
    """
    step = 1.0 / frames_per_second
    deadline = time.monotonic() + max_decode_s
    try:
        with av.open(io.BytesIO(payload), mode="r") as container:
            if not container.streams.video:
                raise BadInput("neither an image nor a video with a video stream", status=415)
            stream = container.streams.video[0]
            check_pixels(stream.codec_context.width, stream.codec_context.height, max_pixels,
                         "the video")
            # FFmpeg's own bound too: a frame that grows mid-stream is refused before it
            # is allocated, not after (it would be decoded even where it is not kept).
            stream.codec_context.options = {"max_pixels": str(max_pixels)}
            duration = _duration_s(container, stream)
            if duration is not None and duration > max_seconds:
                raise MediaTooLong(f"video is {duration:.0f} s long, over the "
                                   f"{max_seconds:.0f} s limit")
            if duration is not None:
                step = max(step, duration / max_frames)
            frames, next_time, size = [], 0.0, None
            for frame in container.decode(stream):
                if time.monotonic() > deadline:
                    raise OverLimit(f"decoding took over {max_decode_s:g} s")
                moment = frame.time if frame.time is not None else next_time
                if moment > max_seconds:
                    raise MediaTooLong(f"video runs past the {max_seconds:.0f} s limit")
                if moment + 1e-6 >= next_time:
                    if len(frames) == max_frames:
                        raise OverLimit(f"the video holds over {max_frames} frames to sample")
                    check_pixels(frame.width, frame.height, max_pixels, "a video frame")
                    size = size or scaled_size(frame.width, frame.height, shortest_side)
                    small = frame.reformat(width=size[0], height=size[1], format="rgb24")
                    rows, columns = aspect_window(size[1], size[0])
                    frames.append(torch.from_numpy(small.to_ndarray()[rows, columns]))
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
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_decode_s: float = DEFAULT_MAX_DECODE_S,
                 max_frames: int = DEFAULT_MAX_FRAMES,
                 enhancer: FrameEnhancer | None = None) -> None:
        self.image_size = image_size
        self.enhancer = enhancer
        self.mean, self.std = mean, std
        self.frames_per_second = frames_per_second
        self.max_seconds = max_seconds
        self.max_pixels = max_pixels
        self.max_decode_s = max_decode_s
        self.max_frames = max_frames

    def __call__(self, payload: bytes) -> tuple[torch.Tensor, str]:
        if not payload:
            raise BadInput("empty request body")
        header = image_header(payload, self.max_pixels)
        still = None
        if header is not None and not getattr(header, "is_animated", False):
            check_scans(header, payload)
            still = within(self.max_decode_s, lambda: _decode_image(payload), "the image")
        if still is not None:
            return self.prepare(still), "image"
        frames = sample_video(payload, frames_per_second=self.frames_per_second,
                              max_seconds=self.max_seconds, shortest_side=self.image_size,
                              max_pixels=self.max_pixels, max_decode_s=self.max_decode_s,
                              max_frames=self.max_frames)
        return self.prepare(frames), "video"

    def prepare(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``(F, 3, H, W)`` -> float ``(F, 3, S, S)``, resized, cropped, normalised."""
        rows, columns = aspect_window(*frames.shape[-2:])
        images = F.resize(frames[..., rows, columns], [self.image_size], antialias=True)
        images = F.center_crop(images, [self.image_size, self.image_size])
        if self.enhancer is not None:
            images = self.enhancer(images)
        return F.normalize(images.float() / 255.0, self.mean, self.std)
