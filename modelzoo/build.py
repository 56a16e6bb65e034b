"""Build every archive in the manifest: load or create the model, trace, verify, package."""

from __future__ import annotations

import logging
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from modelzoo import archiver, audio_classifier, engines, families
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


def build_one(spec: ArchiveSpec, options: BuildOptions, progress: tqdm) -> BuiltArchive:
    """Trace, verify against eager for each check batch size, then package the archive."""
    progress.set_postfix_str(f"{spec.name}: loading")
    model = families.load(spec, options.size, seed_for(spec.name), options.export_dir).eval()
    return package_model(spec, engines.with_precision(model, spec.precision), options, progress)


def package_model(spec: ArchiveSpec, model: nn.Module, options: BuildOptions,
                  progress: tqdm) -> BuiltArchive:
    """Trace ``model`` with the spec's engine, check it against eager, and archive it."""
    labels = model.labels() if hasattr(model, "labels") else []
    # Staged outside the model store: TorchServe would load a model directory found there.
    with tempfile.TemporaryDirectory(prefix=f"vigil-{spec.name}-") as staging:
        progress.set_postfix_str(f"{spec.name}: building the {spec.engine} engine")
        engine = engines.build(spec.engine, model, model.example(2), Path(staging) / "engine")
        progress.set_postfix_str(f"{spec.name}: checking against eager")
        generator = torch.Generator().manual_seed(0)
        checks = [model.example(size, generator) for size in options.check_batch_sizes]
        difference = engines.check_outputs(model, engine, checks, options.tolerance)
        progress.set_postfix_str(f"{spec.name}: packaging")
        serialized = engines.save(engine, Path(staging) / "model.pt")
        extra = model.extra_files(Path(staging) / "extra") if hasattr(model, "extra_files") else []
        path = archiver.package(spec, serialized, labels, options.export_dir,
                                model.handler_settings(), extra)
    return BuiltArchive(spec=spec, path=path, max_difference=difference)


def build_all(specs: Sequence[ArchiveSpec], options: BuildOptions) -> list[BuiltArchive]:
    """Build ``specs`` in order with a progress bar; stops at the first failure."""
    built = []
    with tqdm(specs, desc="building archives", unit="archive") as progress:
        for spec in progress:
            built.append(build_one(spec, options, progress))
    return built
