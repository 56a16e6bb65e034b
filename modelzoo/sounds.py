"""Sounds for generated speech and for augmenting it while training: backgrounds (noise of
three colours, mains hum, beeps, two kinds of synthetic music), mixing at a signal-to-noise
ratio, room responses (pyroomacoustics' image-source shoebox rooms, or exponentially
decaying noise), codec round trips through FFmpeg (Opus, MP3, AAC, MP2) and gain.

Every function takes a ``numpy.random.Generator`` and works on float32 mono at 16 kHz, so a
seed reproduces a sound exactly.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import av
import numpy as np
from scipy.signal import fftconvolve, lfilter

SAMPLE_RATE_HZ = 16_000
Sound = Callable[[np.random.Generator, int], np.ndarray]
# The codec, the container it travels in, and the rate its encoder takes.
CODECS = {"opus": ("libopus", "ogg", 48_000), "mp3": ("libmp3lame", "mp3", 16_000),
          "aac": ("aac", "adts", 16_000), "mp2": ("mp2", "mp2", 16_000)}


def rms(signal: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(signal, dtype=np.float64)) + 1e-12))


def _unit(signal: np.ndarray) -> np.ndarray:
    return (signal / rms(signal)).astype(np.float32)


def colored_noise(rng: np.random.Generator, samples: int, exponent: float) -> np.ndarray:
    """Noise whose power falls as 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    frequencies = np.fft.rfftfreq(samples)
    frequencies[0] = frequencies[1]
    return _unit(np.fft.irfft(spectrum / frequencies ** (exponent / 2), n=samples))


def white(rng: np.random.Generator, samples: int) -> np.ndarray:
    return colored_noise(rng, samples, 0.0)


def pink(rng: np.random.Generator, samples: int) -> np.ndarray:
    return colored_noise(rng, samples, 1.0)


def brown(rng: np.random.Generator, samples: int) -> np.ndarray:
    return colored_noise(rng, samples, 2.0)


def hum(rng: np.random.Generator, samples: int) -> np.ndarray:
    """Mains hum (50 or 60 Hz) with its odd harmonics, over a little noise."""
    t = np.arange(samples) / SAMPLE_RATE_HZ
    base = rng.choice([50.0, 60.0])
    tone = sum(np.sin(2 * np.pi * base * k * t + rng.uniform(0, 6.3)) / k for k in (1, 3, 5, 7))
    return _unit(tone + 0.1 * rng.standard_normal(samples))


def beeps(rng: np.random.Generator, samples: int) -> np.ndarray:
    """A tone switched on and off, as a game or an alarm makes."""
    t = np.arange(samples) / SAMPLE_RATE_HZ
    gate = np.sin(2 * np.pi * rng.uniform(0.2, 2.0) * t) > rng.uniform(0.3, 0.8)
    return _unit(np.sin(2 * np.pi * rng.uniform(400, 2500) * t) * gate
                 + 0.05 * rng.standard_normal(samples))


def chords(rng: np.random.Generator, samples: int) -> np.ndarray:
    """Music: a chord progression of soft sawtooth voices with a slow swell."""
    t = np.arange(samples) / SAMPLE_RATE_HZ
    beat = rng.uniform(1.5, 3.0)
    roots = 110 * 2 ** (rng.integers(0, 12, size=int(samples / SAMPLE_RATE_HZ / beat) + 2) / 12)
    out = np.zeros(samples)
    for interval in (0, 4, 7):
        frequency = roots[(t / beat).astype(int)] * 2 ** (interval / 12)
        phase = np.cumsum(frequency) / SAMPLE_RATE_HZ
        out += sum(np.sin(2 * np.pi * k * phase) / k for k in range(1, 6))
    return _unit(out * (0.6 + 0.4 * np.sin(2 * np.pi * t / (4 * beat))))


def plucks(rng: np.random.Generator, samples: int) -> np.ndarray:
    """Music of another kind: a plucked-string melody (Karplus-Strong) over noise drums."""
    out = np.zeros(samples)
    step = int(SAMPLE_RATE_HZ * rng.uniform(0.15, 0.4))
    for start in range(0, samples, step):
        period = int(SAMPLE_RATE_HZ / (196 * 2 ** (rng.integers(0, 24) / 12)))
        length = min(step * 3, samples - start)
        excitation = np.zeros(length)
        excitation[:period] = rng.uniform(-1, 1, min(period, length))
        feedback = np.zeros(period + 2)
        feedback[0], feedback[period], feedback[period + 1] = 1.0, -0.497, -0.497
        out[start:start + length] += lfilter([1.0], feedback, excitation)
        if rng.random() < 0.5:
            burst = min(800, samples - start)
            out[start:start + burst] += rng.standard_normal(burst) * np.exp(
                -np.arange(burst) / 120)
    return _unit(out)


BACKGROUNDS: dict[str, Sound] = {"white": white, "pink": pink, "brown": brown, "hum": hum,
                                 "beeps": beeps, "chords": chords, "plucks": plucks}


def mix(signal: np.ndarray, background: np.ndarray, snr_db: float,
        level: float | None = None) -> np.ndarray:
    """``signal`` with ``background`` under it, ``snr_db`` below the signal's level (its
    RMS, or ``level``: the RMS of its speech alone, where the signal is mostly silence)."""
    scale = (level or rms(signal)) / (rms(background) * 10 ** (snr_db / 20))
    return (signal + scale * background).astype(np.float32)


def room_response(rng: np.random.Generator, rt60_s: float) -> np.ndarray:
    """The impulse response of a random shoebox room with reverberation time ``rt60_s``
    between a random talker and microphone (pyroomacoustics' image-source method)."""
    import pyroomacoustics as pra

    size = rng.uniform([3, 3, 2.4], [10, 8, 4])
    absorption, max_order = pra.inverse_sabine(rt60_s, size)
    room = pra.ShoeBox(size, fs=SAMPLE_RATE_HZ, materials=pra.Material(absorption),
                       max_order=min(max_order, 12))
    room.add_source(rng.uniform(0.5, size - 0.5))
    room.add_microphone(rng.uniform(0.5, size - 0.5))
    room.compute_rir()
    return np.asarray(room.rir[0][0], dtype=np.float32)


def decaying_noise_response(rng: np.random.Generator, rt60_s: float) -> np.ndarray:
    """A synthetic impulse response: a direct path, then noise decaying 60 dB in ``rt60_s``."""
    length = int(rt60_s * SAMPLE_RATE_HZ)
    t = np.arange(length) / SAMPLE_RATE_HZ
    tail = rng.standard_normal(length) * 10 ** (-3 * t / rt60_s)
    tail[0] = 4.0
    return tail.astype(np.float32)


def reverberate(signal: np.ndarray, response: np.ndarray) -> np.ndarray:
    """``signal`` convolved with ``response``, as long as it was and as loud."""
    wet = fftconvolve(signal, response)[: len(signal)]
    return (wet * rms(signal) / rms(wet)).astype(np.float32)


def codec_round_trip(signal: np.ndarray, codec: str, bitrate: int) -> np.ndarray:
    """``signal`` encoded with ``codec`` (a :data:`CODECS` name) at ``bitrate`` bits per
    second and decoded again, as long as it was."""
    encoder, container, rate = CODECS[codec]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(encoder, rate=rate, layout="mono")
        stream.bit_rate = bitrate
        frame = av.AudioFrame.from_ndarray(signal[None, :].astype(np.float32), format="flt",
                                           layout="mono")
        frame.sample_rate = SAMPLE_RATE_HZ
        convert = av.AudioResampler(format=stream.codec_context.format, layout="mono",
                                    rate=rate)
        for converted in (*convert.resample(frame), *convert.resample(None)):
            for packet in stream.encode(converted):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    buffer.seek(0)
    decoded = []
    with av.open(buffer) as source:
        back = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
        for frame in source.decode(audio=0):
            decoded += [out.to_ndarray()[0] for out in back.resample(frame)]
        decoded += [out.to_ndarray()[0] for out in back.resample(None)]
    out = np.concatenate(decoded)[: len(signal)]
    return np.pad(out, (0, len(signal) - len(out))).astype(np.float32)


def gain(signal: np.ndarray, decibels: float) -> np.ndarray:
    """``signal`` louder or softer by ``decibels``, its peak held at most at full scale."""
    scaled = signal * 10 ** (decibels / 20)
    peak = float(np.max(np.abs(scaled))) if len(scaled) else 0.0
    return (scaled / peak if peak > 1.0 else scaled).astype(np.float32)
