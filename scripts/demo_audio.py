"""The trained part of the demo: a tiny audio classifier per demo language, trained on speech
generated with espeak-ng (or taken from the user's cache when the generator's and the
trainer's settings have not changed), built as a new archive version, and fresh generated
clips, positive and negative, to stream through ``vigil run audio``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from modelzoo import audio_classifier, speech
from modelzoo.audio_training import AudioTrainingOptions
from modelzoo.build import BuildOptions, package_model
from modelzoo.train_audio import (GENERATOR_FILE, TrainAudioRequest, archive_spec, next_version,
                                  train_and_build)
from scripts import harness
from scripts.services.process import REPO_ROOT

LANGUAGES = ("hi", "ta")
TRAINING_SET = {"clips": 960, "seed": 0}
STREAMED_PER_LANGUAGE = 8
CODE = ("modelzoo/speech.py", "modelzoo/audio_training.py", "modelzoo/audio_classifier.py",
        "modelzoo/train_audio.py")


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/vigil`` (``~/.cache/vigil``): trained demo models live there."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vigil" / "demo-audio"


def cache_key(language: str) -> str:
    """A digest of everything that decides the trained model: the generator's and the
    trainer's settings and the code that generates and trains."""
    settings = {"generator": asdict(speech.SpeechSetOptions(language=language, **TRAINING_SET)),
                "trainer": asdict(AudioTrainingOptions())}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=list).encode())
    for name in CODE:
        digest.update((REPO_ROOT / name).read_bytes())
    return digest.hexdigest()[:16]


def trained_archive(language: str, store: Path, workdir: Path) -> dict:
    """Build the trained version of the language's archive into ``store`` (training it first
    unless the cache holds it); returns its held-out metrics."""
    manifest = REPO_ROOT / "archives" / "manifest.yaml"
    cached = cache_root() / f"{language}-{cache_key(language)}"
    if not (cached / "metrics.json").exists():
        data = workdir / f"speech-{language}"
        harness.step(f"generating {TRAINING_SET['clips']} spoken {language} clips and "
                     f"training a tiny classifier (cached for the next run in {cached})")
        options = speech.SpeechSetOptions(language=language, **TRAINING_SET)
        with tqdm(total=options.clips, desc=f"speaking {language}", unit="clip") as progress:
            speech.generate(options, data, progress=progress)
        partial = cached.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        train_and_build(TrainAudioRequest(data=data, language=language, out=partial,
                                          manifest=manifest, export_dir=store))
        shutil.rmtree(cached, ignore_errors=True)
        partial.rename(cached)
        return json.loads((cached / "metrics.json").read_text())
    metrics = json.loads((cached / "metrics.json").read_text())
    harness.step(f"the {language} classifier is cached ({cached}): building its archive")
    spec = archive_spec(manifest, language)
    trained = dataclasses.replace(spec, version=next_version(spec.version),
                                  threshold=round(metrics["threshold"], 6),
                                  checkpoint=str(cached / "checkpoint"))
    model = audio_classifier.from_checkpoint(trained.checkpoint).eval()
    with tqdm(total=1, desc=f"building {spec.name} {trained.version}", unit="archive") as bar:
        package_model(trained, model, BuildOptions(export_dir=store, release=False), bar)
        bar.update()
    return metrics


def streamed_clips(language: str, media: Path) -> list[dict]:
    """Fresh clips (another seed than training), half of them saying a policy word."""
    options = speech.SpeechSetOptions(language=language, clips=STREAMED_PER_LANGUAGE,
                                      near_miss_share=0.0, seed=1000)
    folder = media / f"stream-{language}"
    clips = speech.generate(options, folder)
    (folder / GENERATOR_FILE).unlink()
    return [{"clip_id": f"{language}-{clip.kind[:3]}-{index}", "stream_id": f"stream-{index}",
             "language": language, "expected": clip.label,
             "audio_url": (folder / clip.path).as_uri()}
            for index, clip in enumerate(clips)]
