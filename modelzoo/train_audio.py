"""From labelled clips to a served model version, in one call (``vigil train audio``):
decode, train (early stopping), calibrate the threshold, report, save the checkpoint, and
build ``audio_nsfw_<language>`` at a new version through the normal build, which runs the
engine's accuracy check and records the archive (with its threshold) in the catalogue."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from modelzoo import audio_classifier, audio_training, catalogue
from modelzoo.build import BuildOptions, BuiltArchive, package_model, seed_for
from modelzoo.manifest import ArchiveSpec, ManifestError, load_manifest

GENERATOR_FILE = "generator.json"  # written by `vigil audio generate` beside its manifest
FINE_TUNE_LEARNING_RATE = 3e-5


@dataclass(frozen=True, kw_only=True)
class TrainAudioRequest:
    data: Path
    language: str
    out: Path
    manifest: Path
    export_dir: Path
    init: Path | None = None
    target: str = "fpr:0.01"
    epochs: int = audio_training.AudioTrainingOptions.epochs
    learning_rate: float | None = None
    version: str | None = None
    seed: int = 0
    candidate: bool = False  # build the version as the model's candidate, not live


@dataclass(frozen=True)
class TrainedAudio:
    built: BuiltArchive
    metrics: dict[str, Any]
    reports: list[Path]

    def summary(self) -> str:
        m, spec = self.metrics, self.built.spec
        return (f"{self.built.path}  ({spec.name} {spec.version}, {spec.engine} "
                f"{spec.precision}, threshold {m['threshold']:.4f}, vs eager max |diff| "
                f"{self.built.max_difference:.1e})\n"
                f"held-out: precision {m['precision']:.3f}, recall {m['recall']:.3f}, "
                f"FPR {m['fpr']:.3f}, AUC {m['auc']:.3f}; trained in "
                f"{m['train_seconds']:.0f} s\n"
                f"report: {self.reports[1]}\n"
                f"to make this the manifest's model: version: \"{spec.version}\", "
                f"checkpoint: {spec.checkpoint}, threshold: {m['threshold']:.4f}")


def archive_spec(manifest: Path, language: str) -> ArchiveSpec:
    """The manifest's audio_nsfw archive serving ``language``."""
    for spec in load_manifest(manifest):
        if spec.family == "audio_nsfw" and language in spec.languages:
            return spec
    raise ManifestError(f"no audio_nsfw archive for language {language!r} in {manifest}")


def next_version(version: str) -> str:
    """One minor up: 1.0 -> 1.1, 2 -> 2.1."""
    major, _, minor = version.partition(".")
    return f"{major}.{int(minor or 0) + 1}"


def train_and_build(request: TrainAudioRequest) -> TrainedAudio:
    """Train on ``request.data`` and build the new version; raises ValueError for bad data
    or a bad target, :class:`ManifestError` for an unknown language or a version that is
    already released."""
    spec = archive_spec(request.manifest, request.language)
    learning_rate = request.learning_rate or (
        FINE_TUNE_LEARNING_RATE if request.init else audio_training.AudioTrainingOptions
        .learning_rate)
    options = audio_training.AudioTrainingOptions(epochs=request.epochs, target=request.target,
                                                  learning_rate=learning_rate,
                                                  seed=request.seed)
    clips = audio_training.read_labelled(request.data)
    with tqdm(total=len(clips), desc="decoding clips", unit="clip") as progress:
        waves, labels = audio_training.load_waveforms(clips, progress)
    if request.init:
        model = audio_classifier.from_checkpoint(str(request.init))
        # The usual fine-tuning of a pretrained wav2vec2: its convolutional front end stays.
        model.encoder.freeze_feature_encoder()
    else:
        model = audio_classifier.from_size("tiny", seed=seed_for(spec.name))
    with tqdm(total=options.epochs, desc=f"training {spec.name}", unit="epoch") as progress:
        def report(row: dict) -> None:
            progress.set_postfix_str(f"train {row['train_loss']:.3f} held-out "
                                     f"{row['held_out_loss']:.3f}")
            progress.update()

        model, result = audio_training.train(model, waves, labels, options,
                                             spans=[clip.span for clip in clips],
                                             on_epoch=report)
    held_labels = result["held_out_labels"].numpy()
    held_scores = result["held_out_scores"].numpy()
    metrics = {**audio_training.calibrate(held_labels, held_scores, options.target),
               "target": options.target, "train_seconds": result["train_seconds"],
               "best_epoch": result["best_epoch"], "epochs_run": len(result["history"]),
               "train_clips": result["train_clips"], "held_out_clips": len(held_labels),
               "held_out_positives": int(held_labels.sum()), "history": result["history"]}
    checkpoint = request.out / "checkpoint"
    model.save_pretrained(checkpoint)
    reports = audio_training.write_report(request.out, language=request.language,
                                          metrics=metrics, labels=held_labels,
                                          scores=held_scores)
    trained = dataclasses.replace(spec, version=request.version or next_version(spec.version),
                                  threshold=round(metrics["threshold"], 6),
                                  checkpoint=str(checkpoint))
    # Clips from the generator make a dev build, like the random-weight ones.
    generated = (request.data if request.data.is_dir() else request.data.parent) / GENERATOR_FILE
    build = BuildOptions(export_dir=request.export_dir, release=not generated.exists(),
                         candidate=request.candidate)
    with tqdm(total=1, desc="building the archive", unit="archive") as progress:
        built = package_model(trained, model, build, progress,
                              reference=catalogue.score_reference(
                                  held_scores.tolist(), f"{len(held_scores)} held-out clips"))
        progress.update()
    return TrainedAudio(built, metrics, reports)
