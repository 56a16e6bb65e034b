"""Property tests at the handlers' decoders: whatever a container's header declares (sample
rate, channels, frames; width, height; scans; animation frames), decoding gives a bounded
tensor or a 4xx, in bounded time and memory, never another exception (which in a worker is
a 422 at best and, out of memory, a dead worker).

Memory is bounded for real: the process's data segment may grow by at most ``HEADROOM``
while these run (``RLIMIT_DATA``), so an allocation sized from a header fails the test."""

from __future__ import annotations

import io
import resource
import struct
import zlib
from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from handlers.audio_io import ClipDecoder
from handlers.errors import BadInput
from handlers.visual_io import FramePreparer

HEADROOM = 1536 * 2**20
RATE, SIZE = 16_000, 32
CHECKS = settings(max_examples=60, deadline=timedelta(seconds=20),
                  suppress_health_check=[HealthCheck.function_scoped_fixture,
                                         HealthCheck.too_slow])


def _data_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmData in /proc/self/status")


@pytest.fixture(scope="module")
def bounded_memory() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    resource.setrlimit(resource.RLIMIT_DATA, (_data_bytes() + HEADROOM, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def decodes_or_refuses(decode, payload: bytes, largest: int) -> None:
    """The property: a tensor of at most ``largest`` elements, or a :class:`BadInput`."""
    try:
        out = decode(payload)
    except BadInput as refused:
        assert 400 <= refused.status < 500
        return
    tensor = out[0] if isinstance(out, tuple) else out
    assert tensor.numel() <= largest


AUDIO = ClipDecoder(sample_rate=RATE, clip_samples=20 * RATE, max_decode_s=3.0)
FRAMES = FramePreparer(image_size=SIZE, mean=[0.5] * 3, std=[0.5] * 3, max_decode_s=3.0)
LARGEST_VIDEO = FRAMES.max_frames * 3 * SIZE * SIZE


def wav(rate: int, channels: int, bits: int, declared: int, real: int) -> bytes:
    block = channels * bits // 8
    data = bytes(min(real * block, 1 << 20))
    return (b"RIFF" + struct.pack("<I", (36 + declared) & 0xFFFFFFFF) + b"WAVE" + b"fmt "
            + struct.pack("<IHHIIHH", 16, 1, channels, rate, (rate * block) & 0xFFFFFFFF,
                          block & 0xFFFF, bits)
            + b"data" + struct.pack("<I", declared & 0xFFFFFFFF) + data)


@given(rate=st.integers(1, 2**32 - 1), channels=st.integers(1, 1024),
       bits=st.sampled_from([8, 16, 24, 32]), declared=st.integers(0, 2**32 - 1),
       real=st.integers(0, 40_000))
@CHECKS
def test_wav_headers(bounded_memory, rate, channels, bits, declared, real):
    decodes_or_refuses(AUDIO.decode, wav(rate, channels, bits, declared, real), 20 * RATE)


def _small_flac() -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros((4096, 2), dtype=np.float32), RATE, format="FLAC")
    return buffer.getvalue()


FLAC = _small_flac()


@given(rate=st.integers(1, 2**20 - 1), channels=st.integers(1, 8),
       total=st.integers(0, 2**36 - 1))
@CHECKS
def test_flac_streaminfo(bounded_memory, rate, channels, total):
    flac = bytearray(FLAC)
    packed = int.from_bytes(flac[18:26], "big")
    packed &= ~(((1 << 20) - 1) << 44 | 0b111 << 41 | (1 << 36) - 1)
    packed |= rate << 44 | (channels - 1) << 41 | total
    flac[18:26] = packed.to_bytes(8, "big")
    decodes_or_refuses(AUDIO.decode, bytes(flac), 20 * RATE)


def png(width: int, height: int, depth: int, colour: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@given(width=st.integers(1, 2**31 - 1), height=st.integers(1, 2**31 - 1),
       kind=st.sampled_from([(1, 0), (8, 0), (8, 2), (16, 2), (8, 6)]))
@CHECKS
def test_png_dimensions(bounded_memory, width, height, kind):
    decodes_or_refuses(FRAMES, png(width, height, *kind), SIZE * SIZE * 3)


def _small_jpeg(progressive: bool) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buffer, format="JPEG",
                                                    progressive=progressive)
    return buffer.getvalue()


JPEGS = {False: _small_jpeg(False), True: _small_jpeg(True)}


@given(width=st.integers(1, 65535), height=st.integers(1, 65535), scans=st.integers(1, 200),
       progressive=st.booleans())
@CHECKS
def test_jpeg_dimensions_and_scans(bounded_memory, width, height, scans, progressive):
    jpeg = bytearray(JPEGS[progressive])
    frame = jpeg.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    jpeg[frame + 5:frame + 9] = struct.pack(">HH", height, width)
    last, end = jpeg.rindex(b"\xff\xda"), jpeg.rindex(b"\xff\xd9")
    payload = bytes(jpeg[:last] + jpeg[last:end] * scans + jpeg[end:])
    decodes_or_refuses(FRAMES, payload, SIZE * SIZE * 3)


@given(screen=st.tuples(st.integers(1, 65535), st.integers(1, 65535)),
       frame=st.tuples(st.integers(1, 65535), st.integers(1, 65535)),
       frames=st.integers(1, 3000), delay=st.integers(0, 65535))
@CHECKS
def test_gif_dimensions_and_frames(bounded_memory, screen, frame, frames, delay):
    gif = (b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
           + (b"\x21\xf9\x04\x00" + struct.pack("<H", delay) + b"\x00\x00"
              + b"\x2c" + struct.pack("<HHHHB", 0, 0, *frame, 0)
              + b"\x02\x02\x44\x01\x00") * frames + b"\x3b")
    decodes_or_refuses(FRAMES, gif, LARGEST_VIDEO)
