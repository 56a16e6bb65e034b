"""How each model family is loaded: from its checkpoint, or at a named size with random weights.

Every loaded module offers ``example(batch, generator)`` (inputs for tracing and checks),
``handler_settings()`` (what its handler needs, e.g. ``embedding_dim``), and optionally
``labels()`` and ``extra_files(folder)`` (files shipped in the archive, e.g. a tokenizer).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from modelzoo import (audio_checks, audio_classifier, catalogue, clip_visual, fusion, vggish,
                      xlmr_text)
from modelzoo.manifest import ArchiveSpec

# The fusion head reads its input sizes from these archives, never from constants.
DEFAULT_EXTRACTORS = {"visual": "clip_visual", "text": "xlmr_text", "audio": "vggish_audio"}
# What each family's output means, for the accuracy check of lower precisions.
OUTPUT_KIND = {"audio_nsfw": "score", "vrt_fusion": "distribution", "clip_visual": "embedding",
               "xlmr_text": "embedding", "vggish_audio": "embedding"}
# Which families one TorchServe serves together (one pod per pipeline, deploy/k8s/).
SERVING_GROUP = {"audio_nsfw": "audio", "clip_visual": "vrt", "xlmr_text": "vrt",
                 "vggish_audio": "vrt", "vrt_fusion": "vrt"}
CALIBRATION_BATCHES = 4
# What a request to each family's handler may carry: the daemons route by this.
ACCEPTS = {"audio_nsfw": ("audio",), "clip_visual": ("image", "video"),
           "xlmr_text": ("text",), "vggish_audio": ("audio", "video"),
           "vrt_fusion": ("embeddings",)}


class MissingCheckpoint(ValueError):
    """A real build was asked for an archive whose manifest entry has no checkpoint."""


def _checkpoint(spec: ArchiveSpec) -> str:
    if not spec.checkpoint:
        raise MissingCheckpoint(
            f"{spec.name} has no checkpoint; build with --tiny for random weights")
    return spec.checkpoint


def extractor_names(spec: ArchiveSpec) -> dict[str, str]:
    """The extractor archive feeding each modality of a fusion head."""
    return {**DEFAULT_EXTRACTORS, **spec.options.get("extractors", {})}


def extractor_dims(spec: ArchiveSpec, store: Path) -> dict[str, int]:
    """Embedding sizes of the live extractor archives in ``store``'s catalogue."""
    dims = {}
    for modality, name in extractor_names(spec).items():
        try:
            dims[modality] = int(catalogue.entry(store, name)["outputs"]["embedding"])
        except KeyError as exc:
            raise FileNotFoundError(f"{spec.name} needs {name} built into {store} first "
                                    f"(its embedding size): {exc}") from exc
    return dims


def workers_served_together(specs: Sequence[ArchiveSpec]) -> dict[str, int]:
    """Per archive, the workers of every archive of its serving group."""
    totals: dict[str, int] = {}
    for spec in specs:
        group = SERVING_GROUP[spec.family]
        totals[group] = totals.get(group, 0) + spec.workers
    return {spec.name: totals[SERVING_GROUP[spec.family]] for spec in specs}


def _samples(model: nn.Module) -> int:
    """The waveform length an audio model takes (trivial benchmark models take 1 s)."""
    return model.example(1).shape[-1]


def calibration(family: str, model: nn.Module, seed: int = 0) -> list:
    """Inputs for the int8 quantisers: representative audio for the audio classifiers
    (speech, silence, noise, music: modelzoo/audio_checks.py), the model's examples else."""
    if family == "audio_nsfw":
        return audio_checks.batches((8,) * CALIBRATION_BATCHES, audio_checks.CALIBRATION_SEED,
                                    _samples(model))
    generator = torch.Generator().manual_seed(seed)
    return [model.example(8, generator) for _ in range(CALIBRATION_BATCHES)]


def checks(family: str, model: nn.Module, sizes: Sequence[int]) -> list:
    """Inputs the accuracy check compares an engine with eager on, in batches of ``sizes``:
    representative audio for the audio classifiers (disjoint from the calibration clips,
    and a batch of 12 more so the correlation is taken over enough scores), the model's
    examples else."""
    if family == "audio_nsfw":
        return audio_checks.batches((*sizes, 12), audio_checks.CHECK_SEED, _samples(model))
    generator = torch.Generator().manual_seed(0)
    return [model.example(size, generator) for size in sizes]


def describe(spec: ArchiveSpec, settings: dict, labels: list[str]) -> dict:
    """The catalogue entry of an archive built from ``spec`` whose handler got ``settings``."""
    entry = {"name": spec.name, "version": spec.version, "family": spec.family,
             "file": spec.file_name, "languages": list(spec.languages), "labels": labels,
             "accepts": list(ACCEPTS[spec.family]), "engine": spec.engine,
             "precision": settings.get("precision", spec.precision),
             "threshold": spec.threshold, "inputs": {}, "outputs": {}, "sources": {},
             "limits": {"decode_s": spec.decode_limit_s, "batch_size": spec.batch_size,
                        "response_timeout_s": spec.response_timeout_s}}
    if "embedding_dim" in settings:
        entry["outputs"] = {"embedding": int(settings["embedding_dim"])}
    if "dims" in settings:
        entry["inputs"] = dict(settings["dims"])
        entry["sources"] = extractor_names(spec)
        entry["outputs"] = {"categories": len(labels)}
    if "sample_rate" in settings:
        entry["inputs"] = {"waveform": int(settings["sample_rate"] * settings["clip_seconds"])}
        entry["outputs"] = {"score": 1}
    if "screen" in spec.options:
        entry["screen"] = dict(spec.options["screen"])
    return entry


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
