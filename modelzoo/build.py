"""Build every archive in the manifest: load or create the model, trace, verify, package."""

from __future__ import annotations

import logging
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from modelzoo import archiver, audio_classifier, engines
from modelzoo.manifest import ArchiveSpec

logger = logging.getLogger(__name__)

CHECK_BATCH_SIZES = (1, 3, 8)


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    """How to build: ``size`` builds random-weight models instead of loading checkpoints."""

    export_dir: Path
    size: str | None = None
    check_batch_sizes: Sequence[int] = CHECK_BATCH_SIZES
    tolerance: float = engines.DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        if self.size is not None and self.size not in audio_classifier.SIZES:
            raise ValueError(f"size must be one of {sorted(audio_classifier.SIZES)}")


@dataclass(frozen=True)
class BuiltArchive:
    spec: ArchiveSpec
    path: Path
    max_difference: float


def seed_for(name: str) -> int:
    """A stable seed per archive, so a rebuild gives the same weights."""
    return zlib.crc32(name.encode())


def load_model(spec: ArchiveSpec, options: BuildOptions) -> audio_classifier.AudioNsfwClassifier:
    """The eager model: random weights of ``options.size``, else the spec's checkpoint."""
    if options.size is not None:
        return audio_classifier.from_size(options.size, seed=seed_for(spec.name))
    if not spec.checkpoint:
        raise ValueError(f"{spec.name} has no checkpoint; build with --tiny for random weights")
    return audio_classifier.from_checkpoint(spec.checkpoint)


def build_one(spec: ArchiveSpec, options: BuildOptions, progress: tqdm) -> BuiltArchive:
    """Trace, verify against eager for each check batch size, then package the archive."""
    progress.set_postfix_str(f"{spec.name}: loading")
    model = load_model(spec, options).eval()
    example = torch.randn(2, audio_classifier.CLIP_SAMPLES)
    progress.set_postfix_str(f"{spec.name}: building the {spec.engine} engine")
    engine = engines.build(spec.engine, model, example)
    progress.set_postfix_str(f"{spec.name}: checking against eager")
    generator = torch.Generator().manual_seed(0)
    checks = [
        torch.randn(size, audio_classifier.CLIP_SAMPLES, generator=generator)
        for size in options.check_batch_sizes
    ]
    difference = engines.check_outputs(model, engine, checks, options.tolerance)
    progress.set_postfix_str(f"{spec.name}: packaging")
    handler_settings = {
        "sample_rate": audio_classifier.SAMPLE_RATE_HZ,
        "clip_seconds": audio_classifier.CLIP_SECONDS,
    }
    # Staged outside the model store: TorchServe would load a model directory found there.
    with tempfile.TemporaryDirectory(prefix=f"vigil-{spec.name}-") as staging:
        serialized = engines.save(engine, Path(staging) / "model.pt")
        path = archiver.package(
            spec, serialized, audio_classifier.labels_of(model), options.export_dir,
            handler_settings,
        )
    return BuiltArchive(spec=spec, path=path, max_difference=difference)


def build_all(specs: Sequence[ArchiveSpec], options: BuildOptions) -> list[BuiltArchive]:
    """Build ``specs`` in order with a progress bar; stops at the first failure."""
    built = []
    with tqdm(specs, desc="building archives", unit="archive") as progress:
        for spec in progress:
            built.append(build_one(spec, options, progress))
    return built
