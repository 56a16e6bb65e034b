"""Livestream-like 20 s clips: what the e2e part sends, and what the energy gate is judged on.

A live stream is not always talking. Between phrases there are a muted microphone, a quiet
room, a game's noise, music. The mix, by share of clips:

- speech (half of it with a policy word): the speech generator's clips, half in the
  training style and half in the shifted one, played back 0 to 24 dB quieter;
- digital silence (a muted microphone);
- room tone: pink noise at -80 to -55 dBFS (a quiet room through an open microphone);
- mains hum at -75 to -50 dBFS;
- loud noise (white, pink, brown) at -30 to -10 dBFS;
- music (chords, plucked strings) at -45 to -15 dBFS.

Every clip is made from its index and the seed alone, so a mix is the same on every machine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from modelzoo import sounds, speech

SECONDS = 20
SAMPLE_RATE_HZ = speech.SAMPLE_RATE_HZ
SHARES = {"speech": 0.5, "silence": 0.08, "room tone": 0.12, "hum": 0.06, "noise": 0.1,
          "music": 0.14}
# kind -> (quietest, loudest) RMS level in dBFS, for the kinds made at a level.
LEVELS_DBFS = {"room tone": (-80.0, -55.0), "hum": (-75.0, -50.0), "noise": (-30.0, -10.0),
               "music": (-45.0, -15.0)}
SPEECH_ATTENUATION_DB = (0.0, 24.0)


@dataclass(frozen=True)
class LiveClip:
    """One clip of the mix: what it is, whether it says a policy word, and its samples."""

    kind: str
    positive: bool
    samples: np.ndarray  # float32, 16 kHz mono


def kinds(count: int) -> list[str]:
    """``count`` kinds in :data:`SHARES`' proportions, interleaved so any prefix is a mix."""
    made = {kind: 0 for kind in SHARES}
    order = []
    for index in range(count):
        # the kind furthest behind its share so far
        kind = min(SHARES, key=lambda k: (made[k] - SHARES[k] * (index + 1), k))
        made[kind] += 1
        order.append(kind)
    return order


def _at_level(samples: np.ndarray, dbfs: float) -> np.ndarray:
    return (samples * 10 ** (dbfs / 20) / max(1e-12, sounds.rms(samples))).astype(np.float32)


def _speech(index: int, seed: int, positive: bool) -> np.ndarray:
    style = ("training", "shifted")[index % 2]
    options = speech.SpeechSetOptions(language="hi", clips=4, seconds=SECONDS, seed=seed,
                                      style=style)
    rng = random.Random(f"livestream/{seed}/{index}")
    word = rng.choice(list(options.policy_words)) if positive else None
    samples, _ = speech.make_clip(rng, np.random.default_rng([seed, index]), options,
                                  "positive" if positive else "negative", word)
    return samples * 10 ** (-rng.uniform(*SPEECH_ATTENUATION_DB) / 20)


def make(index: int, kind: str, seed: int = 0) -> LiveClip:
    """Clip ``index`` of the mix, of ``kind``."""
    samples = SECONDS * SAMPLE_RATE_HZ
    rng = np.random.default_rng([seed, index, 11])
    if kind == "speech":
        positive = index % 4 in (0, 1)
        return LiveClip(kind, positive, _speech(index, seed, positive).astype(np.float32))
    if kind == "silence":
        return LiveClip(kind, False, np.zeros(samples, np.float32))
    source = {"room tone": lambda: sounds.pink(rng, samples),
              "hum": lambda: sounds.hum(rng, samples),
              "noise": lambda: sounds.BACKGROUNDS[rng.choice(["white", "pink", "brown"])](
                  rng, samples),
              "music": lambda: sounds.BACKGROUNDS[rng.choice(["chords", "plucks"])](
                  rng, samples)}[kind]()
    level = rng.uniform(*LEVELS_DBFS[kind])
    return LiveClip(kind, False, np.clip(_at_level(source, level), -1.0, 1.0))


def mix(count: int, seed: int = 0, progress=None) -> list[LiveClip]:
    """``count`` clips of the mix; ``progress`` (a tqdm) advances per clip."""
    made = []
    for index, kind in enumerate(kinds(count)):
        made.append(make(index, kind, seed))
        if progress is not None:
            progress.update()
    return made
