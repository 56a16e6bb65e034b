"""Build every archive in the manifest: load or create the model, build its engine at its
precision (or, with ``precision: auto``, the fastest pair that passes), check it against
eager, package it, and record it in the store's catalogue.

A released version is never overwritten: an archive built from real weights is a release,
and building its name and version again is refused (bump the version in the manifest).
Random-weight builds (``--tiny``, ``--size``) and heads trained on generated data are dev
builds, which later dev builds may replace.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from modelzoo import (
    accuracy,
    archiver,
    audio_classifier,
    catalogue,
    engine_choice,
    engines,
    families,
    layout,
    screen,
)
from modelzoo.manifest import ArchiveSpec, ManifestError

logger = logging.getLogger(__name__)

CHECK_BATCH_SIZES = (1, 3, 8)


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    """How to build: ``size`` builds random-weight models instead of loading checkpoints;
    ``release`` says whether the result is a release (real weights) or a dev build;
    ``workers_served_together`` counts, per archive, the workers of every archive one
    TorchServe serves with it (the handler shares the machine's cores among them)."""

    export_dir: Path
    size: str | None = None
    release: bool | None = None  # None: a release unless built at a random-weight size
    check_batch_sizes: Sequence[int] = CHECK_BATCH_SIZES
    tolerance: float = accuracy.DEFAULT_TOLERANCE
    workers_served_together: Mapping[str, int] = field(default_factory=dict)
    # precision auto: what was chosen per (family, size), so archives of one architecture
    # share the search (each is still checked against its own eager model).
    choices: dict = field(default_factory=dict)
    # Make what is built its model's live version; else record it beside the live one, as
    # the model's candidate (rolled out by the audio daemons) when ``candidate`` is set.
    live: bool = True
    candidate: bool = False

    def __post_init__(self) -> None:
        if self.size is not None and self.size not in audio_classifier.SIZES:
            raise ValueError(f"size must be one of {sorted(audio_classifier.SIZES)}")
        if self.release is None:
            object.__setattr__(self, "release", self.size is None)


@dataclass(frozen=True)
class BuiltArchive:
    spec: ArchiveSpec  # with the engine and precision actually packaged
    path: Path
    max_difference: float
    trials: list[dict] = field(default_factory=list)  # precision auto: every candidate


def seed_for(name: str) -> int:
    """A stable seed per archive, so a rebuild gives the same weights."""
    return zlib.crc32(name.encode())


def build_one(spec: ArchiveSpec, options: BuildOptions, progress: tqdm) -> BuiltArchive:
    """Load the model, then :func:`package_model`."""
    progress.set_postfix_str(f"{spec.name}: loading")
    model = families.load(spec, options.size, seed_for(spec.name), options.export_dir).eval()
    return package_model(spec, model, options, progress)


def _engine(spec: ArchiveSpec, model: nn.Module, options: BuildOptions, scratch: Path,
            progress: tqdm) -> tuple[engines.Engine, dict, list[dict]]:
    """The checked engine for ``spec``, its check, and (auto) every candidate's trial."""
    kind = families.OUTPUT_KIND[spec.family]
    generator = torch.Generator().manual_seed(0)
    checks = families.checks(spec.family, model, options.check_batch_sizes)
    calibration = families.calibration(spec.family, model)
    key = (spec.family, options.size or spec.checkpoint)
    if spec.precision != "auto":
        return (*_checked(spec.engine, spec.precision, model, spec, options, scratch,
                          calibration, checks, progress), [])
    if key in options.choices:  # the same architecture chose already: check this one
        try:
            return (*_checked(*options.choices[key], model, spec, options, scratch,
                              calibration, checks, progress), [])
        except accuracy.EngineMismatch:
            logger.info("%s: %s fails its check here: searching again", spec.name,
                        options.choices[key])

    def show(trial: engine_choice.Trial) -> None:
        progress.set_postfix_str(f"{spec.name}: tried {trial.engine} {trial.precision}")

    engine, trials = engine_choice.choose(
        model, kind=kind, threshold=spec.threshold, example=model.example(2), checks=checks,
        calibration=calibration, timed=model.example(engine_choice.TIMED_BATCH, generator),
        scratch=scratch, on_trial=show)
    options.choices[key] = (engine.name, engine.precision)
    chosen = next(t for t in trials if (t.engine, t.precision) == options.choices[key])
    return engine, chosen.check, [t.row() for t in trials]


def _checked(engine_name: str, precision: str, model: nn.Module, spec: ArchiveSpec,
             options: BuildOptions, scratch: Path, calibration: Sequence, checks: Sequence,
             progress: tqdm) -> tuple[engines.Engine, dict]:
    progress.set_postfix_str(f"{spec.name}: building {engine_name} {precision}")
    engine = engines.build(engine_name, precision, model, model.example(2),
                           scratch / f"{engine_name}-{precision}", calibration)
    progress.set_postfix_str(f"{spec.name}: checking against eager")
    kind = families.OUTPUT_KIND[spec.family]
    return engine, engine_choice.verify(engine, model, precision, kind, checks,
                                        spec.threshold, options.tolerance)


def package_model(spec: ArchiveSpec, model: nn.Module, options: BuildOptions,
                  progress: tqdm, reference: dict | None = None) -> BuiltArchive:
    """Build the spec's engine, check it against eager, archive it and record it in the
    catalogue. Raises :class:`ManifestError` rather than overwrite a released version,
    :class:`~modelzoo.accuracy.EngineMismatch` when the engine answers unlike eager, and
    :class:`~modelzoo.engines.EngineError` when it cannot be built.

    A score model's catalogue entry gets ``reference`` (:func:`catalogue.score_reference`,
    e.g. of held-out clips) or else the engine's scores of the family's calibration inputs.
    """
    refuse_overwrite(spec, options)
    labels = model.labels() if hasattr(model, "labels") else []
    # Staged outside the model store: TorchServe would load a model directory found there.
    with tempfile.TemporaryDirectory(prefix=f"vigil-{spec.name}-") as staging:
        engine, check, trials = _engine(spec, model, options, Path(staging) / "scratch",
                                        progress)
        progress.set_postfix_str(f"{spec.name}: packaging")
        folder = Path(staging) / "artifact"
        folder.mkdir()
        artifact = engine.save(folder)
        chosen = dataclasses.replace(spec, engine=engine.name, precision=engine.precision)
        layout_trials = []
        if spec.layout == "auto":
            chosen, layout_trials = _with_layout(chosen, model, engine, artifact, progress)
        settings = {**model.handler_settings(), "workers_served_together":
                    options.workers_served_together.get(spec.name, spec.workers)}
        extra = model.extra_files(Path(staging) / "extra") if hasattr(model, "extra_files") \
            else []
        if "screen" in spec.options:
            progress.set_postfix_str(f"{spec.name}: tracing its screen")
            extra.append(screen.trace_into(spec.options["screen"]["checkpoint"],
                                           Path(staging) / "screen"))
        path = archiver.package(chosen, artifact.serialized, labels, options.export_dir,
                                settings, [*extra, *artifact.extra])
    if reference is None and families.OUTPUT_KIND[spec.family] == "score":
        reference = calibration_reference(spec.family, model, engine)
    catalogue.record(options.export_dir, {**families.describe(chosen, settings, labels),
                                          "release": options.release,
                                          "accuracy": check, "engine_trials": trials,
                                          **_layout_record(chosen, layout_trials),
                                          **({"score_reference": reference} if reference
                                             else {})},
                     live=options.live, candidate=options.candidate or spec.candidate)
    return BuiltArchive(chosen, path, check.get("max_difference", 0.0), trials)


def _layout_record(spec: ArchiveSpec, trials: list[dict]) -> dict:
    """The catalogue's record of a chosen layout and every trial; nothing without trials."""
    if not trials:
        return {}
    return {"layout": {"workers": spec.workers, "threads": spec.intra_op_threads,
                       "rows_per_call": spec.options.get("max_rows", 0)},
            "layout_trials": trials}


def _with_layout(spec: ArchiveSpec, model: nn.Module, engine: engines.Engine,
                 artifact: engines.Artifact, progress: tqdm) -> tuple[ArchiveSpec, list[dict]]:
    """``spec`` with the fastest workers x threads and rows per call of this machine for
    ``engine``'s packaged artifact, and every layout's trial."""
    progress.set_postfix_str(f"{spec.name}: timing workers x threads")
    checks = families.checks(spec.family, model, (2,))
    with torch.inference_mode():
        reference = [engine(*engines.as_args(check)).float().numpy() for check in checks]

    def show(trial: layout.LayoutTrial) -> None:
        progress.set_postfix_str(f"{spec.name}: {trial.layout.label}: "
                                 f"{trial.clips_per_s or 0:.2f} clips/s")

    best, trials = layout.choose(
        artifact.serialized, engine.precision,
        model.example(engine_choice.TIMED_BATCH, torch.Generator().manual_seed(0)), checks,
        reference, on_trial=show)
    logger.info("%s: %s serves %s %s fastest here", spec.name, best.label, engine.name,
                engine.precision)
    options = {**spec.options, **({"max_rows": best.rows} if best.rows else {})}
    return (dataclasses.replace(spec, workers=best.workers, intra_op_threads=best.threads,
                                options=options),
            [trial.row() for trial in trials])


def calibration_reference(family: str, model: nn.Module, engine: engines.Engine) -> dict:
    """The built engine's scores of the family's generated calibration inputs: a reference
    for drift until one is calibrated on real clips (``vigil train audio``'s held-out set)."""
    with torch.inference_mode():
        scores = [float(score) for batch in families.calibration(family, model)
                  for score in engine(*engines.as_args(batch)).flatten()]
    return catalogue.score_reference(scores, "generated calibration inputs")


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


def build_all(specs: Sequence[ArchiveSpec], options: BuildOptions,
              manifest: Sequence[ArchiveSpec] | None = None) -> list[BuiltArchive]:
    """Build ``specs`` in order with a progress bar; stops at the first failure. Workers
    served together are counted over ``manifest`` (default: ``specs``)."""
    served = families.workers_served_together(manifest or specs)
    options = dataclasses.replace(options, workers_served_together=served)
    built = []
    with tqdm(specs, desc="building archives", unit="archive") as progress:
        for spec in progress:
            built.append(build_one(spec, options, progress))
    return built
