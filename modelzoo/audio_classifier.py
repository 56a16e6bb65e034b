"""Wav2Vec2 NSFW-speech classifier for fixed-length clips, in a traceable wrapper.

The wrapper takes raw 16 kHz waveforms ``(batch, samples)`` and returns P(nsfw) per clip,
so the handler only decodes audio and the traced graph owns everything numeric
(normalisation, the encoder, the softmax).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

from modelzoo import keyword_spotter
from modelzoo.hf import quiet_loss_lookup
from modelzoo.keyword_spotter import KeywordSpotter, SpotterConfig

SAMPLE_RATE_HZ = 16_000
CLIP_SECONDS = 20
CLIP_SAMPLES = SAMPLE_RATE_HZ * CLIP_SECONDS
DEFAULT_LABELS = ("safe", "nsfw")
POSITIVE_LABEL = "nsfw"

logger = logging.getLogger(__name__)


POOLINGS = ("mean", "max")


@dataclass(frozen=True, kw_only=True)
class AudioModelSize:
    """Encoder dimensions for a randomly initialised model (no checkpoint)."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    conv_dim: tuple[int, ...]
    conv_kernel: tuple[int, ...]
    conv_stride: tuple[int, ...]
    classifier_proj_size: int
    pos_conv: tuple[int, int]  # kernel, groups
    # "max" over time: a word anywhere in 20 s should count; the mean of 20 s dilutes a
    # one-second word twenty-fold (measured on generated speech: held-out AUC 0.87 vs 0.63).
    pooling: str = "mean"
    # A first convolution initialised as a mel-spaced Gabor filterbank (four phases per
    # band) and kept fixed in training: a small model learns words from little data only
    # with a spectral front end to start from.
    filterbank: bool = False


# "tiny" keeps tests fast (25 frames per second); "base" is wav2vec2-base for the
# benchmarks (HF's default front end); "small" is the keyword spotter that `vigil train
# audio` trains from scratch (modelzoo/keyword_spotter.py).
SMALL = "small"
SIZES = {
    "tiny": AudioModelSize(
        hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128,
        conv_dim=(96, 64, 64), conv_kernel=(400, 3, 3), conv_stride=(160, 2, 2),
        classifier_proj_size=32, pos_conv=(16, 4), pooling="max", filterbank=True,
    ),
    "base": AudioModelSize(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        conv_dim=(512,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
        classifier_proj_size=256, pos_conv=(128, 16),
    ),
}


class AudioNsfwClassifier(nn.Module):
    """Raw waveform ``(B, T)`` -> P(nsfw) ``(B,)``."""

    def __init__(
        self, encoder: Wav2Vec2ForSequenceClassification, *, positive_index: int,
        normalize: bool = True, pooling: str = "mean",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        self.pooling = pooling
        encoder.config.vigil_pooling = pooling  # saved with the checkpoint
        quiet_loss_lookup(encoder)
        self.encoder = encoder
        self.positive_index = positive_index
        self.normalize = normalize

    def logits(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, classes)``: what training optimises."""
        if self.normalize:
            # Same per-clip zero-mean/unit-variance as Wav2Vec2FeatureExtractor(do_normalize).
            mean = waveforms.mean(dim=-1, keepdim=True)
            var = waveforms.var(dim=-1, keepdim=True, unbiased=False)
            waveforms = (waveforms - mean) / torch.sqrt(var + 1e-7)
        if self.pooling == "mean":  # Hugging Face's own head, as a checkpoint expects
            return self.encoder(input_values=waveforms).logits
        frames = self.encoder.wav2vec2(waveforms).last_hidden_state
        return self.encoder.classifier(self.encoder.projector(frames).max(dim=1).values)

    @property
    def head(self) -> nn.Linear:
        """The last layer, whose bias sets where scores sit."""
        return self.encoder.classifier

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What training updates: all but a fixed filterbank front end."""
        first = self.encoder.wav2vec2.feature_extractor.conv_layers[0].conv
        fixed = {id(p) for p in first.parameters()} if getattr(
            self.encoder.config, "vigil_filterbank", False) else set()
        return [p for p in self.parameters() if p.requires_grad and id(p) not in fixed]

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(waveforms), dim=-1)[:, self.positive_index]

    def save_pretrained(self, folder: Path) -> None:
        """A Hugging Face checkpoint folder that :func:`from_checkpoint` loads back."""
        from transformers import Wav2Vec2FeatureExtractor
        from transformers.utils import logging as transformers_logging

        # A one-shard checkpoint gets a "Writing model shards" bar of its own otherwise,
        # in the middle of the caller's progress output.
        transformers_logging.disable_progress_bar()
        self.encoder.save_pretrained(folder)
        Wav2Vec2FeatureExtractor(sampling_rate=SAMPLE_RATE_HZ,
                                 do_normalize=self.normalize).save_pretrained(folder)

    def handler_settings(self) -> dict:
        return {"sample_rate": SAMPLE_RATE_HZ, "clip_seconds": CLIP_SECONDS}

    def example(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(batch, CLIP_SAMPLES, generator=generator)

    def labels(self) -> list[str]:
        return labels_of(self)


def _positive_index(id2label: dict[int, str]) -> int:
    for index, label in id2label.items():
        if label.lower() == POSITIVE_LABEL:
            return int(index)
    raise ValueError(f"no {POSITIVE_LABEL!r} label in the checkpoint's id2label {id2label}")


def labels_of(model: AudioNsfwClassifier) -> list[str]:
    """Labels in class-index order, as index_to_name.json wants them."""
    id2label = model.encoder.config.id2label
    return [id2label[i] for i in range(len(id2label))]


def from_checkpoint(name_or_path: str) -> AudioNsfwClassifier | KeywordSpotter:
    """Load a fine-tuned checkpoint: a local directory or a model-hub id (a Wav2Vec2
    sequence classifier), or a directory holding a keyword spotter trained from scratch.

    Raises whatever ``transformers`` raises when the checkpoint cannot be found or read.
    """
    if keyword_spotter.is_saved_in(Path(name_or_path)):
        return keyword_spotter.load(Path(name_or_path))
    encoder = Wav2Vec2ForSequenceClassification.from_pretrained(name_or_path)
    normalize = True
    try:
        from transformers import Wav2Vec2FeatureExtractor

        normalize = Wav2Vec2FeatureExtractor.from_pretrained(name_or_path).do_normalize
    except OSError:
        logger.warning("no feature-extractor config in %s: normalising inputs", name_or_path)
    id2label = {int(k): v for k, v in encoder.config.id2label.items()}
    return AudioNsfwClassifier(
        encoder.eval(), positive_index=_positive_index(id2label), normalize=normalize,
        pooling=getattr(encoder.config, "vigil_pooling", "mean"),
    )


def gabor_filterbank(conv: nn.Conv1d, sample_rate: int = SAMPLE_RATE_HZ) -> None:
    """Set ``conv`` (1 input channel, a multiple of 4 outputs) to a mel-spaced Gabor
    filterbank: per band ±cosine and ±sine, so the next layer can sum rectified phases
    into a band's energy."""
    bands, width = conv.out_channels // 4, conv.kernel_size[0]

    def mel(hz: float) -> float:
        return 2595 * math.log10(1 + hz / 700)

    centres = [700 * (10 ** (m / 2595) - 1)
               for m in torch.linspace(mel(80), mel(sample_rate / 2 - 400), bands).tolist()]
    t = (torch.arange(width) - width / 2) / sample_rate
    window = torch.hann_window(width, periodic=False) / width ** 0.5
    with torch.no_grad():
        for band, centre in enumerate(centres):
            phase = 2 * math.pi * centre * t
            for offset, wave in enumerate((torch.cos(phase), -torch.cos(phase),
                                           torch.sin(phase), -torch.sin(phase))):
                conv.weight[4 * band + offset, 0] = window * wave


def from_size(size: str, *, seed: int, labels: tuple[str, ...] = DEFAULT_LABELS
              ) -> AudioNsfwClassifier | KeywordSpotter:
    """A randomly initialised classifier of a named size (``small``: the keyword spotter
    trained from scratch on generated speech); ``seed`` makes it reproducible."""
    if size == SMALL:
        torch.manual_seed(seed)
        return KeywordSpotter(SpotterConfig(labels=labels)).eval()
    dims = SIZES[size]
    config = Wav2Vec2Config(
        hidden_size=dims.hidden_size,
        num_hidden_layers=dims.num_hidden_layers,
        num_attention_heads=dims.num_attention_heads,
        intermediate_size=dims.intermediate_size,
        conv_dim=dims.conv_dim,
        conv_kernel=dims.conv_kernel,
        conv_stride=dims.conv_stride,
        classifier_proj_size=dims.classifier_proj_size,
        num_conv_pos_embeddings=dims.pos_conv[0],
        num_conv_pos_embedding_groups=dims.pos_conv[1],
        vigil_filterbank=dims.filterbank,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        apply_spec_augment=False,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(seed)
    encoder = Wav2Vec2ForSequenceClassification(config).eval()
    if dims.filterbank:
        gabor_filterbank(encoder.wav2vec2.feature_extractor.conv_layers[0].conv)
    id2label = dict(enumerate(labels))
    return AudioNsfwClassifier(encoder, positive_index=_positive_index(id2label),
                               pooling=dims.pooling)
