"""Build every archive in the manifest: load or create the model, trace, verify, package,
and record it in the store's catalogue.

A released version is never overwritten: an archive built from real weights is a release,
and building its name and version again is refused (bump the version in the manifest).
Random-weight builds (``--tiny``, ``--size``) and heads trained on generated data are dev
builds, which later dev builds may replace.
"""

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

from modelzoo import archiver, audio_classifier, catalogue, engines, families
from modelzoo.manifest import ArchiveSpec, ManifestError

logger = logging.getLogger(__name__)

CHECK_BATCH_SIZES = (1, 3, 8)


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    """How to build: ``size`` builds random-weight models instead of loading checkpoints;
    ``release`` says whether the result is a release (real weights) or a dev build."""

    export_dir: Path
    size: str | None = None
    release: bool | None = None  # None: a release unless built at a random-weight size
    check_batch_sizes: Sequence[int] = CHECK_BATCH_SIZES
    tolerance: float = engines.DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        if self.size is not None and self.size not in audio_classifier.SIZES:
            raise ValueError(f"size must be one of {sorted(audio_classifier.SIZES)}")
        if self.release is None:
            object.__setattr__(self, "release", self.size is None)


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
    """Trace ``model`` with the spec's engine, check it against eager, archive it and
    record it in the catalogue; raises :class:`ManifestError` rather than overwrite a
    released version."""
    refuse_overwrite(spec, options)
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
        settings = model.handler_settings()
        path = archiver.package(spec, serialized, labels, options.export_dir, settings, extra)
    catalogue.record(options.export_dir, {**families.describe(spec, settings, labels),
                                          "release": options.release})
    return BuiltArchive(spec=spec, path=path, max_difference=difference)


def refuse_overwrite(spec: ArchiveSpec, options: BuildOptions) -> None:
    """Raise :class:`ManifestError` when building ``spec`` would replace a release, or when
    a release would replace any archive of the same name and version."""
    if not (options.export_dir / spec.file_name).exists():
        return
    try:
        existing = catalogue.entry(options.export_dir, spec.name, spec.version)
    except (KeyError, ValueError):
        existing = {"release": True}  # an archive the catalogue does not know: keep it
    if options.release or existing.get("release", True):
        raise ManifestError(f"{spec.name} {spec.version} is already built in "
                            f"{options.export_dir} and a released version is never "
                            "overwritten: bump its version in the manifest")


def build_all(specs: Sequence[ArchiveSpec], options: BuildOptions) -> list[BuiltArchive]:
    """Build ``specs`` in order with a progress bar; stops at the first failure."""
    built = []
    with tqdm(specs, desc="building archives", unit="archive") as progress:
        for spec in progress:
            built.append(build_one(spec, options, progress))
    return built
