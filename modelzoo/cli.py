"""``vigil build`` and ``vigil train``: the model side of the CLI. Whatever needs torch is
imported by the command that uses it, so ``vigil build --make-live`` (a catalogue edit)
runs under the orchestrator's own install."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from modelzoo import catalogue

logger = logging.getLogger(__name__)


def build(args: argparse.Namespace) -> int:
    """Build the manifest's archives (or those named) into the export directory, or only
    name a built version live (``--make-live``)."""
    if args.make_live:
        return make_live(Path(args.export_dir), args.make_live)
    from modelzoo.accuracy import EngineMismatch
    from modelzoo.build import BuildOptions, build_all
    from modelzoo.engines import EngineError
    from modelzoo.manifest import ManifestError, load_manifest

    manifest = load_manifest(Path(args.manifest))
    specs = manifest
    if args.only:
        unknown = set(args.only) - {spec.name for spec in specs}
        if unknown:
            raise SystemExit(f"not in the manifest: {', '.join(sorted(unknown))}")
        specs = [spec for spec in specs if spec.name in args.only]
    options = BuildOptions(export_dir=Path(args.export_dir), size=args.size)
    try:
        for built in build_all(specs, options, manifest):
            print(f"{built.path}  ({built.spec.engine} {built.spec.precision}; vs eager max "
                  f"|diff| {built.max_difference:.1e})")
    except (ManifestError, EngineError, EngineMismatch) as exc:
        raise SystemExit(f"vigil build: {exc}") from exc
    return 0


def make_live(store: Path, name_version: str) -> int:
    """Record ``NAME=VERSION`` as its model's live version in the store's catalogue."""
    name, _, version = name_version.partition("=")
    try:
        catalogue.make_live(store, name, version)
    except KeyError as exc:
        raise SystemExit(f"vigil build --make-live: {exc.args[0]}") from exc
    print(f"{name} {version} is live in {store / catalogue.FILE_NAME}")
    return 0


def train_vrt(args: argparse.Namespace) -> int:
    """Train the fusion head on an embeddings table and export it into the fusion archive."""
    import dataclasses

    from tqdm import tqdm

    from modelzoo import families, vrt_training
    from modelzoo.build import BuildOptions, package_model
    from modelzoo.embeddings_table import read_table
    from modelzoo.manifest import ManifestError, load_manifest

    specs = {spec.family: spec for spec in load_manifest(Path(args.manifest))}
    spec = specs["vrt_fusion"]
    store = Path(args.export_dir)
    try:
        dims = families.extractor_dims(spec, store)
    except FileNotFoundError as exc:
        raise SystemExit(f"vigil train vrt: {exc}; run `vigil build` first") from exc
    if args.generate:
        table = vrt_training.generate_embeddings(args.generate, dims, seed=args.seed)
    else:
        table = read_table(Path(args.table))
        if vrt_training.table_dims(table) != dims:
            raise SystemExit(f"vigil train vrt: table embeddings {vrt_training.table_dims(table)}"
                             f" do not match the extractor archives {dims}")
    options = vrt_training.TrainingOptions(epochs=args.epochs, seed=args.seed)
    head, report = vrt_training.train(table, dims, options)
    if args.other_table:
        report["other"] = vrt_training.evaluate(head, read_table(Path(args.other_table)), dims)
    for path in vrt_training.write_outputs(head, report, Path(args.out)):
        print(f"wrote {path}")
    trained = dataclasses.replace(spec, checkpoint=str(Path(args.out) / "fusion.pt"))
    # A head trained on generated embeddings is a dev build, like the random-weight ones.
    options = BuildOptions(export_dir=store, release=not args.generate)
    with tqdm(total=1, desc="exporting the head", unit="archive") as progress:
        try:
            built = package_model(trained, head, options, progress)
        except ManifestError as exc:
            raise SystemExit(f"vigil train vrt: {exc}") from exc
        progress.update()
    print(f"{built.path}  ({built.spec.engine} {built.spec.precision}; vs eager max |diff| "
          f"{built.max_difference:.1e})")
    print(vrt_training.summary_markdown(report))
    return 0


def generate_posts(args: argparse.Namespace) -> int:
    """Write generated posts whose every modality carries their category."""
    from tqdm import tqdm

    from modelzoo import vrt_posts

    with tqdm(total=args.posts, desc=f"making {args.template} posts", unit="post") as progress:
        lines = vrt_posts.generate(Path(args.out), args.posts, template=args.template,
                                   seed=args.seed, progress=progress)
    print(f"{args.out}/posts.jsonl: {len(lines)} posts, "
          f"{sum('disagrees' in line for line in lines)} with a modality that disagrees, "
          f"{sum('missing' in line for line in lines)} with one missing")
    return 0


def evaluate_audio(args: argparse.Namespace) -> int:
    """Judge a trained model (and its screen) on labelled clips."""
    from tqdm import tqdm

    from modelzoo import audio_training, evaluate_audio

    try:
        evaluate_audio.trained_metrics(Path(args.model))
        clips = audio_training.read_labelled(Path(args.clips))
        with tqdm(total=len(clips), desc="decoding clips", unit="clip") as progress:
            waves = audio_training.load_waveforms(clips, progress)
        result = evaluate_audio.evaluate(Path(args.model), clips, waves)
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"vigil audio evaluate: {exc}") from exc
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1, default=float))
    print(evaluate_audio.summary(result))
    return 0


def generate_speech(args: argparse.Namespace) -> int:
    """Synthesise a labelled speech set with espeak-ng."""
    from tqdm import tqdm

    from modelzoo import speech

    words = {name: tuple(w.strip() for w in value.split(",") if w.strip())
             for name, value in (("policy_words", args.policy_words),
                                 ("near_misses", args.near_misses)) if value}
    options = speech.SpeechSetOptions(language=args.language, clips=args.clips,
                                      positive_share=args.positive_share, seed=args.seed,
                                      seconds=args.seconds, style=args.style, **words)
    try:
        with tqdm(total=options.clips, desc=f"speaking {args.language} clips",
                  unit="clip") as progress:
            clips = speech.generate(options, Path(args.out), progress=progress)
    except speech.GeneratorError as exc:
        raise SystemExit(f"vigil audio generate: {exc}") from exc
    positives = sum(c.label == speech.POSITIVE for c in clips)
    print(f"{args.out}/manifest.jsonl: {len(clips)} clips, {positives} nsfw, "
          f"{sum(c.kind == 'near_miss' for c in clips)} near misses")
    return 0


def train_audio(args: argparse.Namespace) -> int:
    """Fine-tune, calibrate, report, and build the new archive version."""
    from modelzoo.manifest import ManifestError
    from modelzoo.train_audio import TrainAudioRequest, train_and_build

    request = TrainAudioRequest(
        data=Path(args.data), language=args.language,
        shifted=Path(args.shifted) if args.shifted else None,
        init=Path(args.init) if args.init else None, size=args.size, target=args.target,
        budget_s=TrainAudioRequest.budget_s if args.budget_s is None else args.budget_s,
        learning_rate=args.learning_rate, version=args.version,
        out=Path(args.out or f"models/audio/{args.language}"),
        manifest=Path(args.manifest), export_dir=Path(args.export_dir), seed=args.seed,
        candidate=args.candidate, screen_budget_s=args.screen_budget_s)
    try:
        outcome = train_and_build(request)
    except (ValueError, ManifestError, FileNotFoundError) as exc:
        raise SystemExit(f"vigil train audio: {exc}") from exc
    print(outcome.summary())
    return 0
