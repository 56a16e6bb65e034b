"""Wav2Vec2 NSFW-speech classifier for fixed-length clips, in a traceable wrapper.

The wrapper takes raw 16 kHz waveforms ``(batch, samples)`` and returns P(nsfw) per clip,
so the handler only decodes audio and the traced graph owns everything numeric
(normalisation, the encoder, the softmax).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn
from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

SAMPLE_RATE_HZ = 16_000
CLIP_SECONDS = 20
CLIP_SAMPLES = SAMPLE_RATE_HZ * CLIP_SECONDS
DEFAULT_LABELS = ("safe", "nsfw")
POSITIVE_LABEL = "nsfw"

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class AudioModelSize:
    """Encoder dimensions for a randomly initialised model (no checkpoint)."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    conv_dim: int
    classifier_proj_size: int


# "tiny" keeps tests and the demo fast; "base" matches wav2vec2-base for benchmarks.
SIZES = {
    "tiny": AudioModelSize(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, conv_dim=32, classifier_proj_size=16,
    ),
    "base": AudioModelSize(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, conv_dim=512, classifier_proj_size=256,
    ),
}


class AudioNsfwClassifier(nn.Module):
    """Raw waveform ``(B, T)`` -> P(nsfw) ``(B,)``."""

    def __init__(
        self, encoder: Wav2Vec2ForSequenceClassification, *, positive_index: int,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.positive_index = positive_index
        self.normalize = normalize

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            # Same per-clip zero-mean/unit-variance as Wav2Vec2FeatureExtractor(do_normalize).
            mean = waveforms.mean(dim=-1, keepdim=True)
            var = waveforms.var(dim=-1, keepdim=True, unbiased=False)
            waveforms = (waveforms - mean) / torch.sqrt(var + 1e-7)
        logits = self.encoder(input_values=waveforms).logits
        return torch.softmax(logits, dim=-1)[:, self.positive_index]

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


def from_checkpoint(name_or_path: str) -> AudioNsfwClassifier:
    """Load a fine-tuned checkpoint: a local directory or a model-hub id.

    Raises whatever ``transformers`` raises when the checkpoint cannot be found or read.
    """
    encoder = Wav2Vec2ForSequenceClassification.from_pretrained(name_or_path)
    normalize = True
    try:
        from transformers import Wav2Vec2FeatureExtractor

        normalize = Wav2Vec2FeatureExtractor.from_pretrained(name_or_path).do_normalize
    except OSError:
        logger.warning("no feature-extractor config in %s: normalising inputs", name_or_path)
    id2label = {int(k): v for k, v in encoder.config.id2label.items()}
    return AudioNsfwClassifier(
        encoder.eval(), positive_index=_positive_index(id2label), normalize=normalize
    )


def from_size(size: str, *, seed: int, labels: tuple[str, ...] = DEFAULT_LABELS) -> AudioNsfwClassifier:
    """A randomly initialised classifier of a named size; ``seed`` makes it reproducible."""
    dims = SIZES[size]
    config = Wav2Vec2Config(
        hidden_size=dims.hidden_size,
        num_hidden_layers=dims.num_hidden_layers,
        num_attention_heads=dims.num_attention_heads,
        intermediate_size=dims.intermediate_size,
        conv_dim=(dims.conv_dim,) * 7,
        classifier_proj_size=dims.classifier_proj_size,
        num_conv_pos_embeddings=16 if size == "tiny" else 128,
        num_conv_pos_embedding_groups=4 if size == "tiny" else 16,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        apply_spec_augment=False,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(seed)
    encoder = Wav2Vec2ForSequenceClassification(config).eval()
    id2label = dict(enumerate(labels))
    return AudioNsfwClassifier(encoder, positive_index=_positive_index(id2label))
