"""Decode an encoded clip into a mono 16 kHz waveform of fixed length.

libsndfile (soundfile) reads WAV, FLAC, OGG/Vorbis, OGG/Opus and MP3 quickly; FFmpeg (PyAV)
takes whatever else arrives (AAC/M4A, WebM). Only the samples the model needs are decoded.
"""

from __future__ import annotations

import io
import time

import av
import numpy as np
import soundfile
import torch
import torchaudio

from handlers.errors import BadInput, NoAudioStream, OverLimit

DEFAULT_MAX_DECODE_S = 60.0


def _read_soundfile(payload: bytes, max_seconds: float) -> tuple[np.ndarray, int]:
    with soundfile.SoundFile(io.BytesIO(payload)) as clip:
        frames = int(max_seconds * clip.samplerate)
        samples = clip.read(frames=frames, dtype="float32", always_2d=True)
        return samples.mean(axis=1), clip.samplerate


def _read_ffmpeg(payload: bytes, max_seconds: float, deadline: float) -> tuple[np.ndarray, int]:
    with av.open(io.BytesIO(payload), mode="r") as container:
        if not container.streams.audio:
            raise NoAudioStream("no audio stream in the payload", status=415)
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        # Planar float keeps channels apart so the downmix matches the soundfile path.
        resampler = av.AudioResampler(format="fltp", rate=rate)
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
    if not chunks:
        return np.zeros(0, dtype=np.float32), rate
    return np.concatenate(chunks)[:limit].astype(np.float32), rate


def _require_finite(waveform: torch.Tensor, stage: str) -> None:
    # An IEEE-float WAV can carry NaN or ±Inf; scored, they come out as a NaN score that
    # reads as "safe". Refuse the clip instead (huge finite samples can overflow to Inf in
    # the resampler, hence the second check).
    if not bool(torch.isfinite(waveform).all()):
        raise BadInput(f"the clip holds non-finite samples (NaN or ±Inf) {stage}", status=422)


class ClipDecoder:
    """Bytes of any supported container -> float32 tensor ``(samples,)`` at ``sample_rate``."""

    def __init__(self, *, sample_rate: int, clip_samples: int,
                 max_decode_s: float = DEFAULT_MAX_DECODE_S) -> None:
        self.sample_rate = sample_rate
        self.clip_samples = clip_samples
        self.max_decode_s = max_decode_s
        self._resamplers: dict[int, torchaudio.transforms.Resample] = {}

    def decode(self, payload: bytes) -> torch.Tensor:
        """Decode, downmix, resample, then pad with silence or trim to ``clip_samples``.

        Raises :class:`BadInput` for an empty or undecodable payload.
        """
        return self._fit(self.samples(payload))

    def samples(self, payload: bytes) -> torch.Tensor:
        """Decode, downmix and resample at most ``clip_samples``, without padding.

        Raises :class:`NoAudioStream` for a container without audio, :class:`OverLimit`
        when decoding takes over ``max_decode_s``, :class:`BadInput` for an empty or
        undecodable payload or one with non-finite samples.
        """
        if not payload:
            raise BadInput("empty request body")
        max_seconds = self.clip_samples / self.sample_rate
        try:
            samples, rate = _read_soundfile(payload, max_seconds)
        except (soundfile.LibsndfileError, RuntimeError, TypeError):
            try:
                samples, rate = _read_ffmpeg(payload, max_seconds,
                                             time.monotonic() + self.max_decode_s)
            except (NoAudioStream, OverLimit):
                raise
            except (av.FFmpegError, ValueError, IndexError, EOFError) as exc:
                raise BadInput(f"undecodable audio: {exc}", status=415) from exc
        if samples.size == 0:
            raise BadInput("the clip holds no audio samples")
        waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
        _require_finite(waveform, "as decoded")
        if rate != self.sample_rate:
            waveform = self._resampler(rate)(waveform)
            _require_finite(waveform, "after resampling")
        return waveform

    def _resampler(self, rate: int) -> torchaudio.transforms.Resample:
        # Building the sinc kernel costs more than applying it: keep one per input rate.
        if rate not in self._resamplers:
            self._resamplers[rate] = torchaudio.transforms.Resample(rate, self.sample_rate)
        return self._resamplers[rate]

    def _fit(self, waveform: torch.Tensor) -> torch.Tensor:
        length = waveform.shape[0]
        if length >= self.clip_samples:
            return waveform[: self.clip_samples]
        return torch.nn.functional.pad(waveform, (0, self.clip_samples - length))
