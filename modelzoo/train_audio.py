"""From labelled clips to a served model version, in one call (``vigil train audio``):
decode, train (stopping on a shifted validation set), calibrate the threshold on the
held-out and shifted clips, report both, save the checkpoint, and build
``audio_nsfw_<language>`` at a new version through the normal build, which runs the engine's
accuracy check and records the archive (with its threshold) in the catalogue."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from modelzoo import audio_classifier, audio_training, catalogue, screen
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
    shifted: Path | None = None  # clips unlike the training set: stopping and calibration
    init: Path | None = None
    size: str = audio_classifier.SMALL
    target: str = "fpr:0.01"
    budget_s: float = audio_training.AudioTrainingOptions.budget_s
    learning_rate: float | None = None
    version: str | None = None
    seed: int = 0
    candidate: bool = False  # build the version as the model's candidate, not live
    # Training time for a cascade's screen (modelzoo/screen.py) on the same clips; 0: none.
    screen_budget_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.screen_budget_s >= 0:  # refused before the model trains, not after
            raise ValueError(f"screen_budget_s must be 0 (no screen) or more, got "
                             f"{self.screen_budget_s}")


@dataclass(frozen=True)
class TrainedAudio:
    built: BuiltArchive
    metrics: dict[str, Any]
    reports: list[Path]

    def summary(self) -> str:
        m, spec = self.metrics, self.built.spec
        lines = [f"{self.built.path}  ({spec.name} {spec.version}, {spec.engine} "
                 f"{spec.precision}, threshold {m['threshold']:.4f}, vs eager max |diff| "
                 f"{self.built.max_difference:.1e})"]
        for name in REPORTED:
            if name in m:
                f = m[name]
                rates = ", ".join([f"precision {audio_training.percent(f['precision'])}"] + [
                    f"{key} {audio_training.with_interval(f[key], f[key + '_ci95'])}"
                    for key in ("recall", "fpr")])
                lines.append(f"{name.replace('_', ' ')}: {rates}, AUC {f['auc']:.3f}")
        if "screen" in m:
            lines.append(screen_summary(m["screen"]))
        lines += [f"trained in {m['train_seconds']:.0f} s; report: {self.reports[1]}",
                  f"to make this the manifest's model: version: \"{spec.version}\", "
                  f"checkpoint: {spec.checkpoint}, threshold: {m['threshold']:.4f}"]
        return "\n".join(lines)


REPORTED = ("held_out", "shifted_validation", "shifted")


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


def _decoded(source: Path, what: str) -> tuple[list, list]:
    clips = audio_training.read_labelled(source)
    with tqdm(total=len(clips), desc=f"decoding {what}", unit="clip") as progress:
        return clips, audio_training.load_waveforms(clips, progress)


def _model(request: TrainAudioRequest, spec: ArchiveSpec):
    if request.init:
        model = audio_classifier.from_checkpoint(str(request.init))
        if hasattr(model, "encoder"):  # the usual fine-tuning: the conv front end stays
            model.encoder.freeze_feature_encoder()
        return model
    return audio_classifier.from_size(request.size, seed=seed_for(spec.name))


def _trained(model, name: str, clips: list, waves: list,
             options: audio_training.AudioTrainingOptions,
             shifted: audio_training.LabelledSet | None) -> tuple[Any, dict]:
    """``audio_training.train`` with a progress bar."""
    with tqdm(total=round(options.budget_s), desc=f"training {name}", unit="s") as bar:
        def report(row: dict) -> None:
            bar.set_postfix_str(f"epoch {row['epoch']}, loss {row['train_loss']:.3f}, "
                                f"{row['judged_on']} AUC {row['auc']:.3f}")
            bar.update(min(round(row["seconds"]), bar.total) - bar.n)

        return audio_training.train(model, clips, waves, options, shifted=shifted,
                                    on_epoch=report)


def screen_summary(figures: dict[str, Any]) -> str:
    """One line per cascade: its threshold and, on the shifted (else held-out) clips, what it
    answers alone, the model's positives it keeps and the cost it saves."""
    name = "shifted" if "shifted" in figures["sets"] else "held_out"
    f = figures["sets"][name]
    return (f"screen: threshold {figures['threshold']:.4f}; on {name.replace('_', ' ')} "
            f"clips it answers {audio_training.percent(f['screened_out'])} alone, keeps "
            f"{audio_training.percent(f['model_positives_kept'])} of the model's "
            f"{f['model_positives']} positives, recall "
            f"{audio_training.percent(f['recall_model'])} -> "
            f"{audio_training.percent(f['recall_cascade'])}; the model's cost per clip over "
            f"the cascade's here: {f['saving']:.2f}x")


def train_screen(request: TrainAudioRequest, spec: ArchiveSpec, clips: list, waves: list,
                 options: audio_training.AudioTrainingOptions,
                 shifted: audio_training.LabelledSet | None, model: Any,
                 judged: dict[str, tuple[np.ndarray, np.ndarray]], threshold: float,
                 calibrated_on: list[str]) -> dict[str, Any]:
    """Train the cascade's screen on the same split, calibrate it against ``model``'s
    positives on the calibration sets, measure it on every set, and save it."""
    screen_options = dataclasses.replace(
        options, budget_s=request.screen_budget_s,
        learning_rate=audio_training.AudioTrainingOptions.learning_rate)
    screening, result = _trained(screen.new_screen(seed_for(spec.name) + 1), "its screen",
                                 clips, waves, screen_options, shifted)
    sets = result["sets"]
    screened = {name: audio_training.scores(screening, sets[name].waves) for name in judged}
    positives = {name: screen.model_positives(judged[name][1], threshold) for name in judged}
    # Floored, never rounded up: a threshold a hair higher could drop a kept positive.
    screen_threshold = math.floor(screen.calibrate(
        [(positives[name], screened[name]) for name in calibrated_on]) * 1e6) / 1e6
    held_out = sets["held_out"].waves
    seconds = {"screen_s": screen.seconds_per_clip(screening, held_out),
               "model_s": screen.seconds_per_clip(model, held_out)}
    per_set = {}
    for name, (labels, values) in judged.items():
        figures = screen.figures(labels, values, threshold, screened[name], screen_threshold)
        per_set[name] = {**figures, **screen.cost(seconds["screen_s"], seconds["model_s"],
                                                  figures["screened_out"])}
    folder = request.out / "screen"
    screening.save_pretrained(folder)
    return {"threshold": screen_threshold, "keep": screen.KEEP,
            "calibrated_on": [sets[name].name for name in calibrated_on],
            "checkpoint": str(folder), "train_seconds": result["train_seconds"],
            "best_epoch": result["best_epoch"], "seconds_per_clip": seconds, "sets": per_set}


def train_and_build(request: TrainAudioRequest) -> TrainedAudio:
    """Train on ``request.data`` (stopping and calibrating on ``request.shifted`` too) and
    build the new version; raises ValueError for bad data or a bad target,
    :class:`ManifestError` for an unknown language or a version that is already released."""
    spec = archive_spec(request.manifest, request.language)
    learning_rate = request.learning_rate or (
        FINE_TUNE_LEARNING_RATE if request.init
        else audio_training.AudioTrainingOptions.learning_rate)
    options = audio_training.AudioTrainingOptions(budget_s=request.budget_s,
                                                  target=request.target,
                                                  learning_rate=learning_rate,
                                                  seed=request.seed)
    clips, waves = _decoded(request.data, "training clips")
    shifted = None
    if request.shifted:
        shifted_clips, shifted_waves = _decoded(request.shifted, "shifted clips")
        shifted = audio_training.LabelledSet("shifted", shifted_waves,
                                             np.array([c.positive for c in shifted_clips]))
    model, result = _trained(_model(request, spec), spec.name, clips, waves, options, shifted)
    sets = result["sets"]
    judged = {name: (data.labels, audio_training.scores(model, data.waves))
              for name, data in sets.items()}
    calibrated_on = [name for name in ("held_out", "shifted_validation") if name in judged]
    threshold = audio_training.calibrate([judged[name] for name in calibrated_on],
                                         options.target)
    calibration = [{"set": sets[name].name, "negatives": int((~sets[name].labels).sum()),
                    "allowed_false_positives": audio_training.allowed_false_positives(
                        sets[name].labels, options.target)} for name in calibrated_on]
    for entry in calibration:
        if entry["allowed_false_positives"] == 0:
            tqdm.write("warning: " + audio_training.too_few_negatives(entry, options.target))
    metrics = {"target": options.target, "threshold": threshold,
               "calibrated_on": [sets[name].name for name in calibrated_on],
               "calibration": calibration,
               **{name: audio_training.rates(*judged[name], threshold) for name in judged},
               "size": f"fine-tuned {request.init}" if request.init else request.size,
               "train_seconds": result["train_seconds"], "best_epoch": result["best_epoch"],
               "epochs_run": len(result["history"]), "judged_on": result["history"][-1][
                   "judged_on"], "train_clips": result["train_clips"],
               "history": result["history"]}
    options_served = dict(spec.options)
    if request.screen_budget_s:
        metrics["screen"] = train_screen(request, spec, clips, waves, options, shifted, model,
                                         judged, threshold, calibrated_on)
        options_served["screen"] = {"checkpoint": metrics["screen"]["checkpoint"],
                                    "threshold": metrics["screen"]["threshold"]}
    checkpoint = request.out / "checkpoint"
    model.save_pretrained(checkpoint)
    reports = audio_training.write_report(
        request.out, language=request.language, metrics=metrics, curves=judged,
        more=screen.report_lines(metrics["screen"]) if "screen" in metrics else ())
    trained = dataclasses.replace(spec, version=request.version or next_version(spec.version),
                                  threshold=round(threshold, 6), checkpoint=str(checkpoint),
                                  options=options_served)
    # Clips from the generator make a dev build, like the random-weight ones.
    generated = (request.data if request.data.is_dir() else request.data.parent) / GENERATOR_FILE
    build = BuildOptions(export_dir=request.export_dir, release=not generated.exists(),
                         candidate=request.candidate)
    held_labels, held_scores = judged["held_out"]
    with tqdm(total=1, desc="building the archive", unit="archive") as progress:
        built = package_model(trained, model, build, progress,
                              reference=catalogue.score_reference(
                                  held_scores.tolist(), f"{len(held_scores)} held-out clips"))
        progress.update()
    return TrainedAudio(built, metrics, reports)
