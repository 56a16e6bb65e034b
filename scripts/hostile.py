"""Media that costs a decoder more than its size suggests: what an abuser sends to kill a
model worker or hold it for minutes. Each file is small; each declares, in its header, work
or memory far beyond it. The handlers must refuse or bound every one of them.

Used by the handler tests (unit and property), the memory test against real TorchServe
workers, and the daemons' hostile-input tests.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import soundfile
from PIL import Image

from scripts.posts import bomb_png


def odd_rate_wav(rate: int = 44_101, seconds: float = 1.0) -> bytes:
    """A short WAV at a rate coprime with 16 kHz: resampled exactly, its filter would be
    16,000 × ``rate`` taps (GiBs, and cached per rate)."""
    t = np.arange(int(rate * seconds)) / rate
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate,
                    format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def lying_wav(*, rate: int = 16_000, channels: int = 1, declared_frames: int,
              real_frames: int = 1600) -> bytes:
    """A 16-bit PCM WAV whose header declares ``declared_frames`` of ``channels`` at
    ``rate`` but holds only ``real_frames``: a reader that sizes its buffer from the header
    allocates what was declared."""
    data = np.zeros((real_frames, channels), dtype="<i2").tobytes()
    block = 2 * channels
    declared = min(declared_frames * block, 0xFFFFFFFF - 36)
    header = (b"RIFF" + struct.pack("<I", 36 + declared) + b"WAVE"
              + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block,
                                      block, 16)
              + b"data" + struct.pack("<I", declared))
    return header + data


def flac_bomb(*, rate: int = 655_350, channels: int = 8, seconds: int = 900) -> bytes:
    """A real FLAC of a few frames of silence whose STREAMINFO declares ``seconds`` at
    ``rate`` Hz and ``channels``: 17.6 GiB of float32 if read as declared."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros((4096, channels), dtype=np.float32), rate,
                    format="FLAC", subtype="PCM_16")
    flac = bytearray(buffer.getvalue())
    # STREAMINFO follows "fLaC" and its 4-byte block header; the sample rate (20 bits),
    # channels - 1 (3), bits per sample - 1 (5) and total samples (36) start at byte 10.
    at = 8 + 10
    packed = int.from_bytes(flac[at:at + 8], "big")
    total = rate * seconds
    packed = (packed & ~((1 << 36) - 1)) | (total & ((1 << 36) - 1))
    flac[at:at + 8] = packed.to_bytes(8, "big")
    return bytes(flac)


def thin_png(width: int = 4, height: int = 1_000_000) -> bytes:
    """4 × 1,000,000 pixels in a few KB: under any pixel limit, but resized so its short
    side is 224 it would be 224 × 56,000,000 (35 GiB as float)."""
    return bomb_png(width, height)


def scan_bomb_jpeg(scans: int = 30_000, size: int = 4000) -> bytes:
    """A flat ``size`` × ``size`` progressive JPEG whose last scan (31 bytes: one EOB run
    covers the image) is repeated ``scans`` times. libjpeg warns on each repeat and walks
    every block again: about 9 ms a scan at 16 Mpx, so 30,000 take minutes from 1 MB."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (120, 130, 140)).save(buffer, format="JPEG",
                                                          progressive=True, quality=90)
    jpeg = buffer.getvalue()
    last_scan = jpeg.rindex(b"\xff\xda")
    end = jpeg.rindex(b"\xff\xd9")
    return jpeg[:last_scan] + jpeg[last_scan:end] * scans + jpeg[end:]


def many_frames_gif(frames: int = 20_000) -> bytes:
    """An animated GIF of ``frames`` 1 × 1 frames of 1/100 s each: under half a MB,
    decoded frame by frame for minutes."""
    header = (b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0)  # 2-colour table
              + b"\x00\x00\x00\xff\xff\xff"
              + b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")  # loop forever
    frame = (b"\x21\xf9\x04\x00\x01\x00\x00\x00"  # graphic control: 1/100 s
             + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0)
             + b"\x02\x02\x44\x01\x00")  # LZW: minimum code size 2, one pixel
    return header + frame * frames + b"\x3b"


def huge_video_header(width: int = 60_000, height: int = 60_000) -> bytes:
    """A PNG declaring ``width × height`` (3.6 Gpx): refused from its header alone."""
    return bomb_png(width, height)
