"""A labelled speech set anyone can generate offline: spoken 20 s clips from espeak-ng.

A stand-in for real labelled audio, so that training, calibration and the demo can be run
and tested without a data set: positives say one of a list of "policy words" (harmless
stand-ins by default, fruit names: no slur enters the repository), negatives do not. The
phrase sits at a random offset in 20 s of background (noise, hum or beeps), spoken with a
varied voice, speed, pitch and amplitude; some negatives are near misses (a similar-sounding
word, or the policy word split across two words). The same seed gives the same set.

Writes ``DIR/clips/<id>.wav`` (16 kHz mono) and ``DIR/manifest.jsonl`` (``path``, ``label``
``nsfw``/``safe``, ``kind``, ``text``, ``language``, and ``span``: where the phrase is spoken,
in seconds), the format `vigil train audio` reads.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile

SAMPLE_RATE_HZ = 16_000
ESPEAK_RATE_HZ = 22_050
POSITIVE, NEGATIVE = "nsfw", "safe"
DEFAULT_POLICY_WORDS = ("banana", "mango", "papaya", "pineapple")
# Near misses per default word: close in sound, or the word split across two words.
DEFAULT_NEAR_MISSES = ("bandana", "manga", "papa", "pine apple", "ban ana", "man go")
FILLER = ("today", "weather", "music", "cricket", "friends", "morning", "stream", "video",
          "welcome", "thank you", "please", "share", "live", "family", "dinner", "happy",
          "great", "school", "news", "game", "watch", "later", "hello", "everyone")
VARIANTS = ("", "+m1", "+m3", "+f1", "+f3", "+f4", "+croak", "+klatt")


class GeneratorError(RuntimeError):
    """espeak-ng is missing or refused the text."""


@dataclass(frozen=True, kw_only=True)
class SpeechSetOptions:
    """What to generate; every field takes part in the cache key of a trained model."""

    language: str
    clips: int = 200
    positive_share: float = 0.5
    near_miss_share: float = 0.25  # of the negatives
    seconds: float = 20.0
    policy_words: Sequence[str] = DEFAULT_POLICY_WORDS
    near_misses: Sequence[str] = DEFAULT_NEAR_MISSES
    # How far voices spread: 1 draws every voice variant, speed 120-200 wpm, pitch 25-75;
    # 0 keeps one voice at speed 160 and pitch 50 (amplitude and background always vary).
    variation: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clips < 4 or not 0 < self.positive_share < 1:
            raise ValueError("need at least 4 clips and a positive share in (0, 1)")
        if not 0 <= self.variation <= 1:
            raise ValueError("variation must be in [0, 1]")
        if not self.policy_words:
            raise ValueError("need at least one policy word")


@dataclass
class Clip:
    path: str
    label: str
    kind: str  # positive | negative | near_miss
    text: str
    language: str
    span: tuple[float, float]  # where the phrase is spoken, in seconds
    voice: dict = field(default_factory=dict)


def espeak_binary() -> str:
    """The espeak-ng executable; raises :class:`GeneratorError` with the install hint."""
    found = shutil.which("espeak-ng")
    if found is None:
        raise GeneratorError("espeak-ng is not installed: apt-get install espeak-ng "
                             "(scripts/setup.sh installs it)")
    return found


def speak(text: str, *, voice: str, speed: int, pitch: int, amplitude: int) -> np.ndarray:
    """``text`` spoken by espeak-ng as float32 samples at 16 kHz."""
    completed = subprocess.run(
        [espeak_binary(), "-v", voice, "-s", str(speed), "-p", str(pitch), "-a",
         str(amplitude), "--stdout", text], capture_output=True, check=False)
    if completed.returncode != 0 or not completed.stdout:
        raise GeneratorError(f"espeak-ng failed on {text!r}: {completed.stderr[:200]!r}")
    samples, rate = soundfile.read(io.BytesIO(completed.stdout), dtype="float32")
    return _resample(samples, rate, SAMPLE_RATE_HZ)


def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Linear-interpolation resampling: plenty for synthetic speech under background noise."""
    if rate == target:
        return samples
    positions = np.arange(int(len(samples) * target / rate)) * (rate / target)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)


def background(rng: np.random.Generator, samples: int) -> np.ndarray:
    """Noise, mains hum or beeps, at a random level."""
    t = np.arange(samples) / SAMPLE_RATE_HZ
    kind = rng.integers(3)
    if kind == 0:
        noise = rng.standard_normal(samples)
    elif kind == 1:
        hum = rng.choice([50.0, 60.0])
        noise = np.sin(2 * np.pi * hum * t) + 0.3 * rng.standard_normal(samples)
    else:
        beeps = (np.sin(2 * np.pi * rng.uniform(400, 1200) * t)
                 * (np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t) > 0.7))
        noise = beeps + 0.2 * rng.standard_normal(samples)
    return (rng.uniform(0.005, 0.05) * noise).astype(np.float32)


def sentence(rng: random.Random, word: str | None) -> str:
    """A few filler words, with ``word`` somewhere among them."""
    words = rng.sample(FILLER, rng.randint(2, 5))
    if word is not None:
        words.insert(rng.randint(0, len(words)), word)
    return " ".join(words)


def _voice(rng: random.Random, options: SpeechSetOptions) -> dict:
    """Voice, speed, pitch and amplitude for one clip, spread by ``options.variation``."""
    spread = options.variation
    variants = VARIANTS[: max(1, round(len(VARIANTS) * spread))]
    return {"voice": options.language + rng.choice(variants),
            "speed": rng.randint(160 - round(40 * spread), 160 + round(40 * spread)),
            "pitch": rng.randint(50 - round(25 * spread), 50 + round(25 * spread)),
            "amplitude": rng.randint(80, 180)}


def generate(options: SpeechSetOptions, out: Path, *, progress=None) -> list[Clip]:
    """Write the set under ``out``; returns its clips. ``progress`` (a tqdm) is advanced."""
    rng, noise_rng = random.Random(options.seed), np.random.default_rng(options.seed)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    total = int(options.seconds * SAMPLE_RATE_HZ)
    positives = round(options.clips * options.positive_share)
    near = round((options.clips - positives) * options.near_miss_share)
    kinds = ["positive"] * positives + ["near_miss"] * near
    kinds += ["negative"] * (options.clips - len(kinds))
    rng.shuffle(kinds)
    clips = []
    for index, kind in enumerate(kinds):
        word = {"positive": lambda: rng.choice(list(options.policy_words)),
                "near_miss": lambda: rng.choice(list(options.near_misses)),
                "negative": lambda: None}[kind]()
        text = sentence(rng, word)
        voice = _voice(rng, options)
        spoken = speak(text, **voice)[: total // 2]
        clip = background(noise_rng, total)
        offset = rng.randint(0, total - len(spoken))
        clip[offset:offset + len(spoken)] += spoken
        path = out / "clips" / f"{options.language}-{index:04d}.wav"
        soundfile.write(path, np.clip(clip, -1, 1), SAMPLE_RATE_HZ, subtype="PCM_16")
        span = (round(offset / SAMPLE_RATE_HZ, 3),
                round((offset + len(spoken)) / SAMPLE_RATE_HZ, 3))
        clips.append(Clip(str(path.relative_to(out)), POSITIVE if kind == "positive"
                          else NEGATIVE, kind, text, options.language, span, voice))
        if progress is not None:
            progress.update()
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as manifest:
        for clip in clips:
            manifest.write(json.dumps(asdict(clip), ensure_ascii=False) + "\n")
    (out / "generator.json").write_text(json.dumps(asdict(options), indent=1))
    return clips
