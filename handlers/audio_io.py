"""Decode an encoded clip into a mono 16 kHz waveform of fixed length.

libsndfile (soundfile) reads WAV, FLAC, OGG/Vorbis, OGG/Opus and MP3 quickly; FFmpeg (PyAV)
takes whatever else arrives (AAC/M4A, WebM). Only the samples the model needs are decoded.

What a clip costs is bounded before it is paid, from its header: a sample rate outside
``MIN_RATE_HZ``..``MAX_RATE_HZ`` or more than ``MAX_CHANNELS`` channels is refused (413)
before anything is read; samples are read in blocks and downmixed as they come, so memory
follows what the file holds, never what its header declares; decoding stops with a 413 at
``max_decode_s``. Resampling costs the same whatever the rate: a rate is taken to the
nearest ``RATE_GRID_HZ`` (0.3% of pitch at worst, at 4 kHz; none at 44.1 kHz), which keeps the
filter small, and at most ``RESAMPLERS_CACHED`` filters are kept.
"""

from __future__ import annotations

import functools
import io
import time

import av
import numpy as np
import soundfile
import torch
import torchaudio

from handlers.errors import BadInput, NoAudioStream, OverLimit

DEFAULT_MAX_DECODE_S = 3.0
MIN_RATE_HZ = 4_000
MAX_RATE_HZ = 96_000
MAX_CHANNELS = 8
RATE_GRID_HZ = 25  # 8, 11.025, 16, 22.05, 44.1, 48 kHz... all lie on it
RESAMPLERS_CACHED = 8
BLOCK_FRAMES = 1 << 16


def check_header(rate: int, channels: int) -> None:
    """Raise :class:`OverLimit` for a rate or channel count no clip needs, before anything
    is allocated for it."""
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        raise OverLimit(f"sample rate {rate} Hz is outside {MIN_RATE_HZ}..{MAX_RATE_HZ} Hz")
    if not 1 <= channels <= MAX_CHANNELS:
        raise OverLimit(f"{channels} channels, over the limit of {MAX_CHANNELS}")


def _joined(chunks: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


def _read_soundfile(payload: bytes, max_seconds: float, deadline: float
                    ) -> tuple[np.ndarray, int]:
    with soundfile.SoundFile(io.BytesIO(payload)) as clip:
        check_header(clip.samplerate, clip.channels)
        left = int(max_seconds * clip.samplerate)
        chunks = []
        while left > 0:
            if time.monotonic() > deadline:
                raise OverLimit("decoding the audio took too long")
            block = clip.read(frames=min(BLOCK_FRAMES, left), dtype="float32",
                              always_2d=True)
            if not len(block):
                break
            chunks.append(block.mean(axis=1))
            left -= len(block)
        return _joined(chunks), clip.samplerate


def _read_ffmpeg(payload: bytes, max_seconds: float, deadline: float) -> tuple[np.ndarray, int]:
    with av.open(io.BytesIO(payload), mode="r") as container:
        if not container.streams.audio:
            raise NoAudioStream("no audio stream in the payload", status=415)
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate or 0
        check_header(rate, stream.codec_context.layout.nb_channels)
        # Planar float keeps channels apart so the downmix matches the soundfile path; a
        # frame at another rate or layout mid-stream is converted to the first one's.
        resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout,
                                      rate=rate)
        chunks, decoded = [], 0
        limit = int(max_seconds * rate)
        for frame in container.decode(stream):
            if time.monotonic() > deadline:
                raise OverLimit("decoding the audio took too long")
            for out in resampler.resample(frame):
                chunk = out.to_ndarray().mean(axis=0)
                chunks.append(chunk)
                decoded += chunk.shape[0]
            if decoded >= limit:
                break
    return _joined(chunks)[:limit].astype(np.float32), rate


def _require_finite(waveform: torch.Tensor, stage: str) -> None:
    # An IEEE-float WAV can carry NaN or ±Inf; scored, they come out as a NaN score that
    # reads as "safe". Refuse the clip instead (huge finite samples can overflow to Inf in
    # the resampler, hence the second check).
    if not bool(torch.isfinite(waveform).all()):
        raise BadInput(f"the clip holds non-finite samples (NaN or ±Inf) {stage}", status=422)


def on_grid(rate: int) -> int:
    """``rate`` taken to the nearest multiple of :data:`RATE_GRID_HZ`."""
    return max(RATE_GRID_HZ, round(rate / RATE_GRID_HZ) * RATE_GRID_HZ)


@functools.lru_cache(maxsize=RESAMPLERS_CACHED)
def resampler(rate: int, target: int) -> torchaudio.transforms.Resample:
    """The filter from ``rate`` to ``target``, both on the grid: its size is bounded by the
    grid (building it costs more than applying it, hence the small cache)."""
    return torchaudio.transforms.Resample(rate, target)


class ClipDecoder:
    """Bytes of any supported container -> float32 tensor ``(samples,)`` at ``sample_rate``."""

    def __init__(self, *, sample_rate: int, clip_samples: int,
                 max_decode_s: float = DEFAULT_MAX_DECODE_S) -> None:
        self.sample_rate = sample_rate
        self.clip_samples = clip_samples
        self.max_decode_s = max_decode_s

    def decode(self, payload: bytes) -> torch.Tensor:
        """Decode, downmix, resample, then pad with silence or trim to ``clip_samples``.

        Raises :class:`BadInput` for an empty or undecodable payload.
        """
        return self._fit(self.samples(payload))

    def samples(self, payload: bytes) -> torch.Tensor:
        """Decode, downmix and resample at most ``clip_samples``, without padding.

        Raises :class:`NoAudioStream` for a container without audio, :class:`OverLimit`
        for a rate or channel count over the limits or when decoding takes over
        ``max_decode_s``, :class:`BadInput` for an empty or undecodable payload or one with
        non-finite samples.
        """
        if not payload:
            raise BadInput("empty request body")
        max_seconds = self.clip_samples / self.sample_rate
        deadline = time.monotonic() + self.max_decode_s
        try:
            samples, rate = _read_soundfile(payload, max_seconds, deadline)
        except (soundfile.LibsndfileError, RuntimeError, TypeError):
            try:
                samples, rate = _read_ffmpeg(payload, max_seconds, deadline)
            except (NoAudioStream, OverLimit):
                raise
            except (av.FFmpegError, ValueError, IndexError, EOFError) as exc:
                raise BadInput(f"undecodable audio: {exc}", status=415) from exc
        if samples.size == 0:
            raise BadInput("the clip holds no audio samples")
        waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
        _require_finite(waveform, "as decoded")
        if rate != self.sample_rate:
            waveform = resampler(on_grid(rate), self.sample_rate)(waveform)
            _require_finite(waveform, "after resampling")
        return waveform

    def _fit(self, waveform: torch.Tensor) -> torch.Tensor:
        length = waveform.shape[0]
        if length >= self.clip_samples:
            return waveform[: self.clip_samples]
        return torch.nn.functional.pad(waveform, (0, self.clip_samples - length))
