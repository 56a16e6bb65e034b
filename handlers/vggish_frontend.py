"""VGGish's log-mel frontend with torchaudio: 16 kHz mono -> ``(n, 1, 96, 64)`` examples.

25 ms windows (FFT 512), 10 ms hop, 64 mel bands (HTK scale) from 125 to 7500 Hz, magnitude
mel energies, ``log(mel + 0.01)``, cut into non-overlapping 0.96 s examples of 96 frames.
A clip shorter than one example is padded with silence to one.
"""

from __future__ import annotations

import torch
import torchaudio

SAMPLE_RATE_HZ = 16_000
WINDOW = 400
HOP = 160
FFT = 512
BANDS = 64
EXAMPLE_FRAMES = 96
LOG_OFFSET = 0.01


class LogMelExamples:
    def __init__(self) -> None:
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE_HZ, n_fft=FFT, win_length=WINDOW, hop_length=HOP,
            f_min=125.0, f_max=7500.0, n_mels=BANDS, power=1.0, center=False, mel_scale="htk")

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:
        """``(samples,)`` at 16 kHz -> ``(examples, 1, 96, 64)``."""
        minimum = WINDOW + HOP * (EXAMPLE_FRAMES - 1)
        if waveform.shape[0] < minimum:
            waveform = torch.nn.functional.pad(waveform, (0, minimum - waveform.shape[0]))
        frames = torch.log(self.mel(waveform) + LOG_OFFSET).transpose(0, 1)  # (T, 64)
        count = frames.shape[0] // EXAMPLE_FRAMES
        return frames[: count * EXAMPLE_FRAMES].reshape(count, 1, EXAMPLE_FRAMES, BANDS)
