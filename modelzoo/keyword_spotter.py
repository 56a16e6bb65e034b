"""A keyword spotter that learns policy words from scratch, in minutes, on a CPU: what
``vigil train audio`` trains when it is given no pretrained checkpoint (size ``small``).

Raw 16 kHz waveform ``(B, T)`` -> per-clip normalisation -> a fixed front end (a mel-spaced
bank of 25 ms Gabor filters every 10 ms, band energies, per-channel energy normalisation:
PCEN divides each band by a smoothed recent level, so a steady background fades and a word
stands out whatever the gain) -> a stem of two 2-D convolutions over frequency and time (the
same filters at every height, so a formant that sits higher in one speaker's voice than in
another's meets the same pattern; it halves both axes) -> five 1-D convolutions over time
with batch norm, each unit seeing 1.2 s (a whole word at a slow speaker's pace, and what comes before and after
it: "nana" is the end of "banana", "apple" of "pineapple") -> the maximum over time (a word
anywhere in 20 s counts; a mean would dilute it) -> two logits.

Every step is a convolution, a pointwise operation or a reduction, so it traces and exports
to every engine like the Wav2Vec2 classifiers, with the same contract: waveforms in,
P(nsfw) out. A Wav2Vec2 trained from scratch on a few thousand generated clips learned
little in the same time (docs/TRAINING.md); a real deployment fine-tunes a pretrained
Wav2Vec2 checkpoint instead (``--init``), whose front end has heard real speech.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

SAMPLE_RATE_HZ = 16_000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
SMOOTHING_FRAMES = 40  # PCEN's smoother: an exponential of 10 frames, cut at 0.4 s
CONFIG_FILE, WEIGHTS_FILE = "keyword_spotter.json", "keyword_spotter.pt"


@dataclass(frozen=True, kw_only=True)
class SpotterConfig:
    """The spotter's dimensions; saved beside its weights."""

    bands: int = 40
    # The 2-D stem's channels; 0: none, the 1-D stack reads the bands (the screen, and
    # spotters saved before the stem). It scored speech of unheard speakers better
    # (shifted ROC AUC +0.01 to +0.03, docs/TRAINING.md).
    stem_channels: int = 16
    channels: int = 128
    # About 1.2 s of receptive field (the stem's halving in time counts as the first
    # stride); (5, 5, 5, 9) / (1, 2, 1, 2), 0.33 s, saw parts of words and learned half as
    # fast (docs/TRAINING.md).
    kernels: tuple[int, ...] = (5, 5, 9, 9, 9)
    strides: tuple[int, ...] = (1, 1, 2, 2, 1)
    labels: tuple[str, ...] = ("safe", "nsfw")
    positive_label: str = "nsfw"
    extra: dict = field(default_factory=dict)


class PcenFilterbank(nn.Module):
    """Waveforms ``(B, T)`` -> PCEN band energies ``(B, bands, frames)``; no parameters."""

    def __init__(self, bands: int) -> None:
        super().__init__()
        self.bands = bands

        def mel(hz: float) -> float:
            return 2595 * math.log10(1 + hz / 700)

        centres = [700 * (10 ** (m / 2595) - 1) for m in torch.linspace(
            mel(80), mel(SAMPLE_RATE_HZ / 2 - 400), bands).tolist()]
        t = (torch.arange(WINDOW) - WINDOW / 2) / SAMPLE_RATE_HZ
        window = torch.hann_window(WINDOW, periodic=False)
        filters = torch.zeros(2 * bands, 1, WINDOW)
        for band, centre in enumerate(centres):
            filters[2 * band, 0] = window * torch.cos(2 * math.pi * centre * t)
            filters[2 * band + 1, 0] = window * torch.sin(2 * math.pi * centre * t)
        decay = torch.exp(-torch.arange(SMOOTHING_FRAMES, dtype=torch.float32) / 10.0)
        smoother = (decay / decay.sum()).flip(0).view(1, 1, -1).repeat(bands, 1, 1)
        # Computed from the config alone, so not saved with the weights.
        self.register_buffer("filters", filters, persistent=False)
        self.register_buffer("smoother", smoother, persistent=False)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        pairs = nn.functional.conv1d(waveforms[:, None], self.filters, stride=HOP)
        energy = pairs[:, 0::2] ** 2 + pairs[:, 1::2] ** 2
        history = nn.functional.pad(energy, (SMOOTHING_FRAMES - 1, 0), mode="replicate")
        level = nn.functional.conv1d(history, self.smoother, groups=self.bands)
        return (energy / (1e-6 + level) ** 0.98 + 2.0) ** 0.5 - 2.0 ** 0.5


class KeywordSpotter(nn.Module):
    """Raw waveform ``(B, T)`` -> P(nsfw) ``(B,)``."""

    def __init__(self, config: SpotterConfig = SpotterConfig()) -> None:
        super().__init__()
        self.config = config
        self.positive_index = list(config.labels).index(config.positive_label)
        self.front = PcenFilterbank(config.bands)
        stem = config.stem_channels
        self.stem = nn.Sequential(
            nn.Conv2d(1, stem, 3, padding=1), nn.BatchNorm2d(stem), nn.ReLU(),
            nn.Conv2d(stem, stem, 3, stride=2, padding=1), nn.BatchNorm2d(stem), nn.ReLU(),
        ) if stem else nn.Identity()
        layers: list[nn.Module] = []
        width = stem * ((config.bands + 1) // 2) if stem else config.bands
        for kernel, stride in zip(config.kernels, config.strides):
            layers += [nn.Conv1d(width, config.channels, kernel, stride=stride,
                                 padding=kernel // 2),
                       nn.BatchNorm1d(config.channels), nn.ReLU()]
            width = config.channels
        self.convolutions = nn.Sequential(*layers)
        self.classifier = nn.Linear(config.channels, len(config.labels))

    @property
    def head(self) -> nn.Linear:
        """The last layer, whose bias sets where scores sit."""
        return self.classifier

    def features(self, waveforms: torch.Tensor) -> torch.Tensor:
        """The fixed front end's output ``(B, bands, frames)``."""
        mean = waveforms.mean(dim=-1, keepdim=True)
        std = waveforms.std(dim=-1, keepdim=True, unbiased=False)
        return self.front((waveforms - mean) / (std + 1e-5))

    def logits(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, classes)``: what training optimises."""
        bands = self.features(waveforms)
        if self.config.stem_channels:
            bands = self.stem(bands[:, None]).flatten(1, 2)  # (B, channels x bands, frames)
        return self.classifier(self.convolutions(bands).max(dim=-1).values)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(waveforms), dim=-1)[:, self.positive_index]

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())  # the front end has none

    def labels(self) -> list[str]:
        return list(self.config.labels)

    def handler_settings(self) -> dict:
        return {"sample_rate": SAMPLE_RATE_HZ, "clip_seconds": 20}

    def example(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(batch, 20 * SAMPLE_RATE_HZ, generator=generator)

    def save_pretrained(self, folder: Path) -> None:
        """The config and weights in ``folder``, which :func:`load` reads back."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=1))
        torch.save(self.state_dict(), folder / WEIGHTS_FILE)


def is_saved_in(folder: Path) -> bool:
    return (folder / CONFIG_FILE).exists()


def load(folder: Path) -> KeywordSpotter:
    """A spotter saved by :meth:`KeywordSpotter.save_pretrained`."""
    saved = json.loads((folder / CONFIG_FILE).read_text())
    saved.setdefault("stem_channels", 0)  # saved before the stem existed
    config = SpotterConfig(**{**saved, "kernels": tuple(saved["kernels"]),
                              "strides": tuple(saved["strides"]),
                              "labels": tuple(saved["labels"])})
    spotter = KeywordSpotter(config)
    spotter.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu",
                                       weights_only=True))
    return spotter.eval()
