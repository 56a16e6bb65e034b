"""Generated audio clips in real encoded formats, for the demo, benchmarks and tests."""

from __future__ import annotations

import io

import av
import numpy as np
import soundfile

# format name -> (soundfile format, subtype); "m4a" goes through FFmpeg's AAC encoder.
SOUNDFILE_FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}
FORMATS = (*SOUNDFILE_FORMATS, "m4a")


def synth(seconds: float, rate: int, *, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A speech-like test signal: a few drifting tones plus noise, ``(samples, channels)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    mono = np.zeros_like(t)
    for _ in range(3):
        base = rng.uniform(120, 900)
        mono += rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * base * t * (1 + 0.05 * np.sin(t)))
    mono += 0.05 * rng.standard_normal(t.shape)
    mono = np.clip(mono, -1.0, 1.0)
    return np.repeat(mono[:, None], channels, axis=1).astype(np.float32)


def _encode_m4a(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    layout = "mono" if samples.shape[1] == 1 else "stereo"
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate, layout=layout)
        planar = np.ascontiguousarray(samples.T)
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
        frame.rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def encode(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    """Encode ``(samples, channels)`` float audio as ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "m4a":
        return _encode_m4a(samples, rate)
    container, subtype = SOUNDFILE_FORMATS[fmt]
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=container, subtype=subtype)
    return buffer.getvalue()


def clip(fmt: str = "wav", *, seconds: float = 20.0, rate: int = 16_000, channels: int = 1,
         seed: int = 0) -> bytes:
    """One encoded clip of the synthetic signal."""
    return encode(synth(seconds, rate, channels=channels, seed=seed), rate, fmt)


def encode_float(samples: np.ndarray, rate: int) -> bytes:
    """An IEEE-float WAV of ``samples`` exactly as given (no clipping, NaN and Inf kept)."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def non_finite(value: float, *, seconds: float = 2.0, rate: int = 16_000) -> bytes:
    """A float WAV with ``value`` (NaN or ±Inf) amid a normal signal: the moderation-bypass
    attempt that must be refused, never scored."""
    samples = synth(seconds, rate)
    samples[rate // 2: rate // 2 + 100] = value
    return encode_float(samples, rate)
