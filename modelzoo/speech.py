"""A labelled speech set anyone can generate offline: spoken 20 s clips from espeak-ng.

A stand-in for real labelled audio, so that training, calibration and the demo can be run
and tested without a data set: positives say one of a list of "policy words" (harmless
stand-ins by default, fruit names: no slur enters the repository), negatives do not, and
some negatives say a near miss (a word that sounds close to a policy word). A clip holds one
or more phrases of everyday words by one speaker, under a background (noise, hum, beeps,
music or other people talking), in a room or not, through a codec or not. The same seed
gives the same set.

Every way a clip can vary is a field of a :class:`SpeechStyle`, and two styles ship:
``training`` and ``shifted``, which differ in every one of them (other words around the
policy word and other near misses, other speakers, speeds and pitches, the word only at the
edges of its phrase, more phrases, other backgrounds and babble languages, louder
backgrounds, another kind of room response, other codecs and bitrates). A model trained on
the first and evaluated on the second is evaluated on speech it has not heard.

Each phrase is spoken in parts (a few words each, short pauses between) whether or not it
holds a policy word, so where the word was spoken is known to the sample (``word_span``) and
the pauses say nothing about the label.

Writes ``DIR/clips/<id>.wav`` (16 kHz mono) and ``DIR/manifest.jsonl`` (``path``, ``label``
``nsfw``/``safe``, ``kind``, ``text``, ``language``, ``span``: where the phrase with the word
(or the first phrase) is spoken, ``word_span``: where the policy word or near miss is, in
seconds, and how the clip was made), the format `vigil train audio` reads.
"""

from __future__ import annotations

import functools
import io
import json
import os
import random
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from modelzoo import sounds, vocabulary

SAMPLE_RATE_HZ = sounds.SAMPLE_RATE_HZ
POSITIVE, NEGATIVE = "nsfw", "safe"
DEFAULT_POLICY_WORDS = ("banana", "mango", "papaya", "pineapple")
# Words that sound close to a default policy word. Not splits such as "man go", which
# espeak-ng says exactly as "mango": no listener could hear that label.
TRAINING_NEAR_MISSES = ("bandana", "banner", "manga", "tango", "papa", "pariah", "apple",
                        "pinnacle")
SHIFTED_NEAR_MISSES = ("bonanza", "nana", "mangle", "mongoose", "paper", "papyrus", "maple",
                       "pineal")
RESPONSES_PER_STYLE = 24
PAUSE_S = (0.03, 0.15)  # between the parts of a phrase
BABBLE = "babble"


class GeneratorError(RuntimeError):
    """espeak-ng is missing or refused the text."""


@dataclass(frozen=True, kw_only=True)
class SpeechStyle:
    """How the clips of a set sound: every dimension the generator varies."""

    name: str
    words: tuple[str, ...]  # the everyday words around the policy word
    invented_share: float  # of those words, how many are made up (vocabulary.invented)
    near_misses: tuple[str, ...]
    variants: tuple[str, ...]  # espeak-ng speakers
    speed_wpm: tuple[int, int]
    pitch: tuple[int, int]
    word_at: str  # where a policy word sits in its phrase: "anywhere" or at its "edges"
    phrases: tuple[int, int]  # phrases per clip
    phrase_words: tuple[int, int]  # everyday words per phrase
    backgrounds: tuple[str, ...]  # sounds.BACKGROUNDS, or "babble" (other speakers)
    babble_languages: tuple[str, ...]
    snr_db: tuple[float, float]  # speech over background
    reverb: str  # "room" (image-source shoebox) or "decay" (decaying noise)
    reverb_share: float
    rt60_s: tuple[float, float]
    codecs: tuple[tuple[str, int], ...]  # (codec, bits per second)
    codec_share: float


TRAINING = SpeechStyle(
    name="training", words=vocabulary.TRAINING_WORDS, invented_share=0.5,
    near_misses=TRAINING_NEAR_MISSES,
    variants=vocabulary.TRAINING_VARIANTS, speed_wpm=(130, 200), pitch=(30, 75),
    word_at="anywhere", phrases=(1, 3), phrase_words=(2, 6),
    backgrounds=("white", "pink", "hum", "beeps", "chords", BABBLE),
    babble_languages=vocabulary.TRAINING_BABBLE, snr_db=(5.0, 30.0), reverb="room",
    reverb_share=0.5, rt60_s=(0.2, 0.7),
    codecs=(("opus", 16_000), ("mp3", 32_000), ("aac", 32_000)), codec_share=0.4)
SHIFTED = SpeechStyle(
    name="shifted", words=vocabulary.SHIFTED_WORDS, invented_share=0.0,
    near_misses=SHIFTED_NEAR_MISSES,
    variants=vocabulary.SHIFTED_VARIANTS, speed_wpm=(110, 230), pitch=(15, 90),
    word_at="edges", phrases=(2, 4), phrase_words=(3, 8),
    backgrounds=("brown", "plucks", BABBLE), babble_languages=vocabulary.SHIFTED_BABBLE,
    snr_db=(3.0, 25.0), reverb="decay", reverb_share=0.6, rt60_s=(0.3, 0.9),
    codecs=(("opus", 10_000), ("mp2", 32_000), ("aac", 16_000)), codec_share=0.5)
STYLES = {style.name: style for style in (TRAINING, SHIFTED)}


@dataclass(frozen=True, kw_only=True)
class SpeechSetOptions:
    """What to generate; every field takes part in the cache key of a trained model."""

    language: str
    clips: int = 200
    positive_share: float = 0.5
    near_miss_share: float = 0.25  # of the negatives
    seconds: float = 20.0
    policy_words: Sequence[str] = DEFAULT_POLICY_WORDS
    near_misses: Sequence[str] | None = None  # None: the style's own
    style: str = TRAINING.name
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clips < 4 or not 0 < self.positive_share < 1:
            raise ValueError("need at least 4 clips and a positive share in (0, 1)")
        if not self.policy_words:
            raise ValueError("need at least one policy word")
        if self.style not in STYLES:
            raise ValueError(f"unknown style {self.style!r}; known: {sorted(STYLES)}")

    @property
    def sounds_like(self) -> SpeechStyle:
        return STYLES[self.style]

    @property
    def misses(self) -> tuple[str, ...]:
        return tuple(self.near_misses if self.near_misses is not None
                     else self.sounds_like.near_misses)


@dataclass
class Clip:
    path: str
    label: str
    kind: str  # positive | negative | near_miss
    text: str
    language: str
    span: tuple[float, float]  # where the phrase with the word (or the first) is, seconds
    word_span: tuple[float, float] | None  # where the policy word or near miss is
    voice: dict = field(default_factory=dict)
    sound: dict = field(default_factory=dict)  # background, SNR, room, codec, style


def espeak_binary() -> str:
    """The espeak-ng executable; raises :class:`GeneratorError` with the install hint."""
    found = shutil.which("espeak-ng")
    if found is None:
        raise GeneratorError("espeak-ng is not installed: apt-get install espeak-ng "
                             "(scripts/setup.sh installs it)")
    return found


def speak(text: str, *, voice: str, speed: int, pitch: int, amplitude: int = 100) -> np.ndarray:
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


def _trimmed(samples: np.ndarray, floor: float = 0.01) -> np.ndarray:
    """Without the silence espeak-ng puts around what it says."""
    loud = np.flatnonzero(np.abs(samples) > floor)
    return samples[loud[0]:loud[-1] + 1] if len(loud) else samples


@dataclass
class Phrase:
    audio: np.ndarray
    words: list[str]
    word_span: tuple[int, int] | None  # samples, within the phrase


def _everyday(rng: random.Random, style: SpeechStyle, count: int) -> list[str]:
    avoid = (*DEFAULT_POLICY_WORDS, *style.near_misses)
    return [vocabulary.invented(rng, avoid) if rng.random() < style.invented_share
            else rng.choice(style.words) for _ in range(count)]


def phrase(rng: random.Random, style: SpeechStyle, voice: dict, word: str | None) -> Phrase:
    """A phrase of everyday words (``word`` among them, placed as the style says), spoken
    in up to three parts with short pauses between."""
    words = _everyday(rng, style, rng.randint(*style.phrase_words))
    if word is not None:
        at = (rng.randint(0, len(words)) if style.word_at == "anywhere"
              else rng.choice([0, len(words)]))
        words.insert(at, word)
        parts = [words[:at], [word], words[at + 1:]]
    else:
        cuts = sorted(rng.sample(range(1, len(words)), min(2, len(words) - 1)))
        parts = [words[a:b] for a, b in zip([0, *cuts], [*cuts, len(words)])]
    audio, span = [], None
    for part in (p for p in parts if p):
        if audio:
            audio.append(np.zeros(int(rng.uniform(*PAUSE_S) * SAMPLE_RATE_HZ), np.float32))
        spoken = _trimmed(speak(" ".join(part), **voice))
        start = sum(len(a) for a in audio)
        if part == [word]:
            span = (start, start + len(spoken))
        audio.append(spoken)
    return Phrase(np.concatenate(audio), words, span)


def babble(rng: random.Random, style: SpeechStyle, samples: int) -> np.ndarray:
    """Other people talking: two to four speakers of the style's babble languages saying
    everyday words, end to end, over the whole clip."""
    track = np.zeros(samples, np.float32)
    for _ in range(rng.randint(2, 4)):
        at = rng.randint(0, SAMPLE_RATE_HZ)
        voice = {"voice": f"{rng.choice(style.babble_languages)}+{rng.choice(style.variants)}",
                 "speed": rng.randint(*style.speed_wpm), "pitch": rng.randint(*style.pitch)}
        while at < samples:
            said = speak(" ".join(rng.sample(style.words, 6)), **voice)[: samples - at]
            track[at:at + len(said)] += said
            at += len(said) + rng.randint(0, SAMPLE_RATE_HZ // 2)
    return track


@functools.lru_cache(maxsize=4)
def responses(style: SpeechStyle, seed: int) -> tuple[np.ndarray, ...]:
    """A bank of room responses of the style's kind, made once per style and seed."""
    rng = np.random.default_rng(seed)
    make = sounds.room_response if style.reverb == "room" else sounds.decaying_noise_response
    return tuple(make(rng, rng.uniform(*style.rt60_s)) for _ in range(RESPONSES_PER_STYLE))


def _voice(rng: random.Random, style: SpeechStyle, language: str) -> dict:
    return {"voice": f"{language}+{rng.choice(style.variants)}",
            "speed": rng.randint(*style.speed_wpm), "pitch": rng.randint(*style.pitch)}


def _placed(rng: random.Random, lengths: list[int], total: int) -> list[int]:
    """Start offsets for consecutive pieces of ``lengths`` spread at random over ``total``."""
    room = max(0, total - sum(lengths))
    gaps = sorted(rng.uniform(0, room) for _ in lengths)
    starts, used = [], 0
    for gap, length in zip(gaps, lengths):
        starts.append(int(gap) + used)
        used += length
    return starts


def _seconds(samples: int) -> float:
    return round(samples / SAMPLE_RATE_HZ, 3)


def _fitting(rng: random.Random, phrases: list[Phrase], total: int) -> list[Phrase]:
    """The phrases that fit in ``total`` samples, the one with the word kept first, in a
    random order; a single phrase longer than the clip is cut to it."""
    ranked = sorted(phrases, key=lambda p: p.word_span is None)
    kept, used = [], 0
    for spoken in ranked:
        if not kept or used + len(spoken.audio) <= total:
            kept.append(spoken)
            used += len(spoken.audio)
    first = kept[0]
    if len(first.audio) > total:
        span = first.word_span and (min(first.word_span[0], total), min(first.word_span[1], total))
        kept[0] = Phrase(first.audio[:total], first.words, span)
    rng.shuffle(kept)
    return kept


def make_clip(rng: random.Random, noise_rng: np.random.Generator, options: SpeechSetOptions,
              kind: str, word: str | None) -> tuple[np.ndarray, dict]:
    """One clip's samples and what it holds."""
    style = options.sounds_like
    total = int(options.seconds * SAMPLE_RATE_HZ)
    voice = _voice(rng, style, options.language)
    count = rng.randint(*style.phrases)
    phrases = _fitting(rng, [phrase(rng, style, voice, word if i == 0 else None)
                             for i in range(count)], total)
    starts = _placed(rng, [len(p.audio) for p in phrases], total)
    speech = np.zeros(total, np.float32)
    for start, spoken in zip(starts, phrases):
        speech[start:start + len(spoken.audio)] = spoken.audio
    level = sounds.rms(np.concatenate([p.audio for p in phrases]))
    sound = {"style": style.name, "room": None, "codec": None}
    if rng.random() < style.reverb_share:
        speech = sounds.reverberate(speech, rng.choice(responses(style, options.seed)))
        sound["room"] = style.reverb
    kind_of_background = rng.choice(style.backgrounds)
    background = (babble(rng, style, total) if kind_of_background == BABBLE
                  else sounds.BACKGROUNDS[kind_of_background](noise_rng, total))
    snr = rng.uniform(*style.snr_db)
    mixed = sounds.mix(speech, background, snr, level=level)
    sound |= {"background": kind_of_background, "snr_db": round(snr, 1)}
    if rng.random() < style.codec_share:
        codec, bitrate = rng.choice(style.codecs)
        mixed = sounds.codec_round_trip(mixed, codec, bitrate)
        sound["codec"] = f"{codec} {bitrate // 1000} kb/s"
    mixed = mixed / max(1e-6, float(np.max(np.abs(mixed)))) * rng.uniform(0.1, 0.95)
    held = next((i for i, p in enumerate(phrases) if p.word_span), 0)
    start, spoken = starts[held], phrases[held]
    info = {"kind": kind, "text": " | ".join(" ".join(p.words) for p in phrases),
            "span": (_seconds(start), _seconds(start + len(spoken.audio))),
            "word_span": (_seconds(start + spoken.word_span[0]),
                          _seconds(start + spoken.word_span[1])) if spoken.word_span else None,
            "voice": voice, "sound": sound}
    return mixed.astype(np.float32), info


def _clip(options: SpeechSetOptions, out: Path, index: int, kind: str) -> Clip:
    """Clip ``index`` of the set, written under ``out``: its own seed, so the set is the
    same however many processes make it."""
    rng = random.Random(f"{options.seed}/{index}")
    noise_rng = np.random.default_rng([options.seed, index])
    word = {"positive": lambda: rng.choice(list(options.policy_words)),
            "near_miss": lambda: rng.choice(options.misses),
            "negative": lambda: None}[kind]()
    samples, info = make_clip(rng, noise_rng, options, kind, word)
    path = out / "clips" / f"{options.language}-{index:04d}.wav"
    soundfile.write(path, samples, SAMPLE_RATE_HZ, subtype="PCM_16")
    return Clip(str(path.relative_to(out)), POSITIVE if kind == "positive" else NEGATIVE,
                language=options.language, **info)


def generate(options: SpeechSetOptions, out: Path, *, progress=None,
             workers: int | None = None) -> list[Clip]:
    """Write the set under ``out`` with ``workers`` processes (default: every core);
    returns its clips. ``progress`` (a tqdm) is advanced per clip."""
    rng = random.Random(options.seed)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    positives = round(options.clips * options.positive_share)
    near = round((options.clips - positives) * options.near_miss_share)
    kinds = ["positive"] * positives + ["near_miss"] * near
    kinds += ["negative"] * (options.clips - len(kinds))
    rng.shuffle(kinds)
    workers = workers or min(len(os.sched_getaffinity(0)), 8)
    make = functools.partial(_clip, options, out)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        clips = []
        for clip in pool.map(make, range(len(kinds)), kinds, chunksize=4):
            clips.append(clip)
            if progress is not None:
                progress.update()
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as manifest:
        for clip in clips:
            manifest.write(json.dumps(asdict(clip), ensure_ascii=False) + "\n")
    (out / "generator.json").write_text(json.dumps(asdict(options), indent=1))
    return clips
