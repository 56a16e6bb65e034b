"""Generated posts for the VRT tests, demo and benchmarks: videos with and without an
audio track, images, text-only posts, and the bad media the pipeline must dead-letter."""

from __future__ import annotations

import io
import math
import struct
import zlib
from pathlib import Path

import av
import numpy as np
from PIL import Image

WIDTH, HEIGHT = 64, 48


def _frame(index: int, seed: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A moving gradient, different per seed and frame."""
    y, x = np.mgrid[0:height, 0:width]
    red = (x * 4 + index * 9 + seed * 31) % 256
    green = (y * 5 + index * 3 + seed * 17) % 256
    blue = ((x + y) * 2 + seed * 53) % 256
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def _encode(container, stream, frames) -> None:
    """Encode and mux ``frames`` into ``stream``, then flush the encoder."""
    for frame in frames:
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def video(seconds: float, *, fps: int = 4, audio: bool = True, seed: int = 0,
          size: tuple[int, int] = (WIDTH, HEIGHT)) -> bytes:
    """An MP4 (MPEG-4 Part 2 video, AAC audio) of ``seconds``; no audio track if not
    ``audio``. ``size`` is (width, height)."""
    buffer = io.BytesIO()
    width, height = size
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=16_000) if audio else None
        _encode(container, stream, (av.VideoFrame.from_ndarray(
            _frame(i, seed, width, height), format="rgb24") for i in range(int(seconds * fps))))
        if sound is not None:
            rate, samples = 16_000, int(seconds * 16_000)
            t = np.arange(samples) / rate
            tone = (0.3 * np.sin(2 * math.pi * (220 + 40 * seed) * t)).astype(np.float32)
            _encode(container, sound, (_audio_frame(tone[start:start + 1024], rate)
                                       for start in range(0, samples, 1024)))
    return buffer.getvalue()


def _audio_frame(samples: np.ndarray, rate: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
    frame.sample_rate = rate
    return frame


def long_video(seconds: int) -> bytes:
    """A few frames spread over ``seconds``: a small file with a long running time."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=1)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        frames = []
        for moment in (0, seconds // 2, seconds):
            frames.append(av.VideoFrame.from_ndarray(_frame(moment, 0), format="rgb24"))
            frames[-1].pts = moment
        _encode(container, stream, frames)
    return buffer.getvalue()


def image(seed: int = 0) -> bytes:
    """A PNG still (Pillow writes it: PyAV's image muxer once left a file behind)."""
    buffer = io.BytesIO()
    Image.fromarray(_frame(0, seed)).save(buffer, format="PNG")
    return buffer.getvalue()


def animated_gif(seconds: int, *, fps: int = 5, seed: int = 0) -> bytes:
    """An animated GIF of ``seconds`` at ``fps``."""
    frames = [Image.fromarray(_frame(i, seed)) for i in range(seconds * fps)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:],
                   duration=1000 // fps, loop=0)
    return buffer.getvalue()


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A decompression bomb: a valid 1-bit PNG of ``width × height`` zeros in about 110 KB
    (900 Mpx at the defaults; decoded to RGB that is 2.7 GB)."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then the packed bits
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)
            + chunk(b"IEND", b""))


CAPTIONS = ("dance challenge at night", "नमस्ते दोस्तों", "funny cat video", "match highlights",
            "வணக்கம் music", "cooking show", "")


def good_posts(count: int, media_dir: Path, created_at: str = "2026-11-28T10:00:00Z"
               ) -> list[dict]:
    """``count`` posts.created messages of five kinds, their media written to ``media_dir``:
    video with audio and a caption, image, text only, video without an audio track, and
    (from the fifth post on, every fifth) an animated GIF."""
    good = []
    for index in range(count):
        kind = index % 4
        post = {"post_id": f"post-{index}", "user_id": f"user-{index % 9}",
                "created_at": created_at, "language": "hi"}
        if kind == 0:
            path = media_dir / f"v{index}.mp4"
            path.write_bytes(video(2 + index % 3, seed=index))
            post |= {"video_url": f"file://{path}", "text": CAPTIONS[index % 6]}
        elif kind == 1:
            path = media_dir / f"i{index}.png"
            path.write_bytes(image(index))
            post |= {"image_url": f"file://{path}"}
        elif kind == 2:
            post |= {"text": f"text only post {index} " + CAPTIONS[index % 6]}
        else:
            path = media_dir / f"s{index}.mp4"
            path.write_bytes(video(2, audio=False, seed=index))
            post |= {"video_url": f"file://{path}", "text": "silent video"}
        if index % 5 == 4:
            path = media_dir / f"g{index}.gif"
            path.write_bytes(animated_gif(2, seed=index))
            post = {k: v for k, v in post.items() if k not in ("video_url", "image_url")}
            post |= {"image_url": f"file://{path}"}
        good.append(post)
    return good


def bad_posts(media_dir: Path) -> list[dict]:
    """Posts the VRT daemon must dead-letter, each with the ``reason`` it must give."""
    (media_dir / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 200)
    (media_dir / "empty.mp4").write_bytes(b"")
    (media_dir / "long.mp4").write_bytes(long_video(7200))
    (media_dir / "bomb.png").write_bytes(bomb_png())
    bad = [
        {"post_id": "bad-corrupt", "video_url": f"file://{media_dir / 'corrupt.mp4'}",
         "reason": "undecodable_media"},
        {"post_id": "bad-empty", "video_url": f"file://{media_dir / 'empty.mp4'}",
         "reason": "invalid_field"},
        {"post_id": "bad-long", "video_url": f"file://{media_dir / 'long.mp4'}",
         "reason": "media_too_large"},
        {"post_id": "bad-host", "image_url": "https://elsewhere.example.org/x.png",
         "reason": "media_not_allowed"},
        {"post_id": "bad-nothing", "reason": "missing_field"},
        # 900 Mpx in 110 KB: once held a worker for minutes and starved good posts.
        {"post_id": "bad-bomb", "image_url": f"file://{media_dir / 'bomb.png'}",
         "reason": "media_too_large"},
    ]
    for post in bad:
        post |= {"user_id": "user-x", "created_at": "2026-11-28T10:00:00Z"}
    return bad
