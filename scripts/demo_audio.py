"""The trained part of the demo: a classifier per demo language and a multilingual fallback,
each trained on speech generated with espeak-ng and stopped and calibrated on speech
generated differently (or taken from the user's cache when the generator's and the
trainer's settings have not changed), built as a new archive version; and fresh generated
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

LANGUAGES = ("hi", "ta", "te", "bn", "mr")
FALLBACK = "*"  # the multilingual archive, trained on every demo language
TRAINING_SET = {"clips": 2000, "seconds": 6.0, "seed": 0}
# Negatives enough that 1% of each half is three clips (calibration resolves its target),
# positives enough for a recall within about ten points (a 95% Wilson interval at 100).
SHIFTED_SET = {"clips": 800, "positive_share": 0.25, "style": "shifted", "seed": 1}
BUDGET_S = AudioTrainingOptions.budget_s  # the recipe as it ships
STREAMED_PER_LANGUAGE = 8
CODE = ("modelzoo/speech.py", "modelzoo/sounds.py", "modelzoo/vocabulary.py",
        "modelzoo/augment.py", "modelzoo/audio_training.py", "modelzoo/audio_classifier.py",
        "modelzoo/keyword_spotter.py", "modelzoo/train_audio.py")


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/vigil`` (``~/.cache/vigil``): trained demo models live there."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vigil" / "demo-audio"


def _languages(language: str) -> tuple[str, ...]:
    return LANGUAGES if language == FALLBACK else (language,)


def cache_key(language: str) -> str:
    """A digest of everything that decides the trained model: the generator's and the
    trainer's settings and the code that generates and trains."""
    settings = {"generator": [asdict(speech.SpeechSetOptions(language=lang, **options))
                              for lang in _languages(language)
                              for options in (TRAINING_SET, SHIFTED_SET)],
                "trainer": asdict(AudioTrainingOptions(budget_s=BUDGET_S))}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=list).encode())
    for name in CODE:
        digest.update((REPO_ROOT / name).read_bytes())
    return digest.hexdigest()[:16]


def _generated(language: str, options: dict, folder: Path) -> Path:
    """The clips of ``options`` for ``language`` (every demo language, a share each, for
    the fallback) under ``folder``, with one manifest."""
    languages = _languages(language)
    lines = []
    for lang in languages:
        part = speech.SpeechSetOptions(language=lang, **{
            **options, "clips": options["clips"] // len(languages)})
        with tqdm(total=part.clips, desc=f"speaking {lang} ({part.style})",
                  unit="clip") as progress:
            clips = speech.generate(part, folder / lang, progress=progress)
        lines += [json.dumps({**asdict(c), "path": f"{lang}/{c.path}"}, ensure_ascii=False)
                  for c in clips]
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (folder / GENERATOR_FILE).write_text(json.dumps(options))
    return folder


def _name(language: str) -> str:
    return "the multilingual fallback" if language == FALLBACK else language


def trained_archive(language: str, store: Path, workdir: Path) -> dict:
    """Build the trained version of the language's archive into ``store`` (training it first
    unless the cache holds it); returns its metrics."""
    manifest = REPO_ROOT / "archives" / "manifest.yaml"
    cached = cache_root() / f"{language.replace(FALLBACK, 'multi')}-{cache_key(language)}"
    if not (cached / "metrics.json").exists():
        harness.step(f"generating speech for {_name(language)} and training its classifier "
                     f"(about {BUDGET_S / 60 + 2.5:.0f} minutes; cached for the next run in "
                     f"{cached})")
        folder = workdir / f"speech-{language.replace(FALLBACK, 'multi')}"
        data = _generated(language, TRAINING_SET, folder / "training")
        shifted = _generated(language, SHIFTED_SET, folder / "shifted")
        partial = cached.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        train_and_build(TrainAudioRequest(data=data, shifted=shifted, language=language,
                                          out=partial, manifest=manifest, export_dir=store,
                                          budget_s=BUDGET_S))
        shutil.rmtree(cached, ignore_errors=True)
        partial.rename(cached)
        return json.loads((cached / "metrics.json").read_text())
    metrics = json.loads((cached / "metrics.json").read_text())
    harness.step(f"the classifier of {_name(language)} is cached ({cached}): building its "
                 "archive")
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
    """Fresh clips (another seed than training), half of them saying a policy word; for the
    fallback, clips in a language no archive serves (Swahili)."""
    spoken = "sw" if language == FALLBACK else language
    options = speech.SpeechSetOptions(language=spoken, clips=STREAMED_PER_LANGUAGE,
                                      near_miss_share=0.0, seed=1000)
    folder = media / f"stream-{spoken}"
    clips = speech.generate(options, folder)
    (folder / GENERATOR_FILE).unlink()
    return [{"clip_id": f"{spoken}-{clip.kind[:3]}-{index}", "stream_id": f"stream-{index}",
             "language": spoken, "expected": clip.label,
             "audio_url": (folder / clip.path).as_uri()}
            for index, clip in enumerate(clips)]


def summary(metrics: dict) -> str:
    """A trained model's figures on held-out and shifted speech, in one line."""
    parts = [f"{name.replace('_', ' ')}: AUC {m['auc']:.2f}, recall {m['recall']:.2f}, "
             f"false positives {m['fpr']:.1%} of {m['clips'] - m['positives']}"
             for name, m in ((n, metrics.get(n)) for n in ("held_out", "shifted")) if m]
    return f"threshold {metrics['threshold']:.3f} ({metrics['target']}); " + "; ".join(parts)
