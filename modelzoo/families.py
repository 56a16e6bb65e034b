"""How each model family is loaded: from its checkpoint, or at a named size with random weights.

Every loaded module offers ``example(batch, generator)`` (inputs for tracing and checks),
``handler_settings()`` (what its handler needs, e.g. ``embedding_dim``), and optionally
``labels()`` and ``extra_files(folder)`` (files shipped in the archive, e.g. a tokenizer).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from modelzoo import archiver, audio_classifier, clip_visual, fusion, vggish, xlmr_text
from modelzoo.manifest import ArchiveSpec

# The fusion head reads its input sizes from these archives, never from constants.
DEFAULT_EXTRACTORS = {"visual": "clip_visual", "text": "xlmr_text", "audio": "vggish_audio"}


class MissingCheckpoint(ValueError):
    """A real build was asked for an archive whose manifest entry has no checkpoint."""


def _checkpoint(spec: ArchiveSpec) -> str:
    if not spec.checkpoint:
        raise MissingCheckpoint(
            f"{spec.name} has no checkpoint; build with --tiny for random weights")
    return spec.checkpoint


def extractor_dims(spec: ArchiveSpec, store: Path) -> dict[str, int]:
    """Embedding sizes from the built extractor archives named in the fusion spec."""
    names = {**DEFAULT_EXTRACTORS, **spec.options.get("extractors", {})}
    dims = {}
    for modality, name in names.items():
        mar = store / f"{name}.mar"
        if not mar.exists():
            raise FileNotFoundError(f"{spec.name} needs {mar} built first (its embedding size)")
        dims[modality] = int(archiver.handler_settings(mar)["embedding_dim"])
    return dims


def load(spec: ArchiveSpec, size: str | None, seed: int, store: Path) -> nn.Module:
    """The eager module for ``spec``: random weights of ``size``, else its checkpoint."""
    family = spec.family
    if family == "audio_nsfw":
        return (audio_classifier.from_size(size, seed=seed) if size
                else audio_classifier.from_checkpoint(_checkpoint(spec)))
    if family == "clip_visual":
        return (clip_visual.from_size("tiny", seed) if size
                else clip_visual.from_checkpoint(spec.architecture or "ViT-L-14",
                                                 _checkpoint(spec)))
    if family == "xlmr_text":
        return (xlmr_text.from_size("tiny", seed) if size
                else xlmr_text.from_checkpoint(_checkpoint(spec)))
    if family == "vggish_audio":
        return (vggish.from_size("tiny", seed) if size
                else vggish.from_checkpoint(_checkpoint(spec)))
    if family == "vrt_fusion":
        if spec.checkpoint and Path(spec.checkpoint).exists():
            return fusion.from_checkpoint(spec.checkpoint)
        if size:
            return fusion.random_head(extractor_dims(spec, store), seed)
        raise MissingCheckpoint(f"{spec.name}: train it with `vigil train vrt` first "
                                f"(no {spec.checkpoint}), or build with --tiny")
    raise ValueError(f"unknown family {family!r}")
