"""Augmentation while training the audio classifiers: every window a model learns from is
heard differently each epoch, so it learns the word rather than the recording.

Per window, each with its own probability: speed (0.85 to 1.15 times, which moves pitch and
formants as another speaker would), other sounds under the phrase (noise, hum, beeps, music,
other people talking) at 0 to 25 dB below it, a room, a codec round trip at a low bitrate,
and a gain; where the window falls around the phrase is the time shift. The sounds come
from the training style of modelzoo/speech.py, never from the shifted one, so the shifted
evaluation set stays unheard.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from modelzoo import sounds, speech

BANK_TRACKS = 4  # per kind of background
BABBLE_TRACKS = 12
BANK_SECONDS = 20


@dataclass(frozen=True, kw_only=True)
class AugmentOptions:
    speed_share: float = 0.5
    speed: tuple[float, float] = (0.85, 1.15)
    background_share: float = 0.5
    snr_db: tuple[float, float] = (0.0, 25.0)
    room_share: float = 0.25
    codec_share: float = 0.1
    gain_db: tuple[float, float] = (-12.0, 6.0)


class Augmenter:
    """Makes windows sound different; build once per training run (a few seconds)."""

    def __init__(self, options: AugmentOptions = AugmentOptions(), *, seed: int = 0) -> None:
        self.options = options
        self.rng = np.random.default_rng(seed)
        style = speech.TRAINING
        samples = BANK_SECONDS * speech.SAMPLE_RATE_HZ
        self.backgrounds = [sounds.BACKGROUNDS[kind](self.rng, samples)
                            for kind in style.backgrounds if kind != speech.BABBLE
                            for _ in range(BANK_TRACKS)]
        self.backgrounds += [speech.babble(random.Random(f"augment/{seed}/{index}"), style,
                                           samples) for index in range(BABBLE_TRACKS)]
        self.rooms = speech.responses(style, seed + 1)
        self.codecs = style.codecs

    def __call__(self, window: np.ndarray) -> np.ndarray:
        """``window`` (float32 mono at 16 kHz) as it might also have been heard."""
        options, rng = self.options, self.rng
        length = len(window)
        if rng.random() < options.speed_share:
            factor = rng.uniform(*options.speed)
            window = np.interp(np.arange(length) * factor, np.arange(length), window,
                               right=0.0).astype(np.float32)
        if rng.random() < options.room_share:
            window = sounds.reverberate(window, self.rooms[rng.integers(len(self.rooms))])
        if rng.random() < options.background_share:
            track = self.backgrounds[rng.integers(len(self.backgrounds))]
            if len(track) < length:  # a whole clip (data without spans) longer than the bank's
                track = np.resize(track, length)
            start = rng.integers(0, len(track) - length + 1)
            window = sounds.mix(window, track[start:start + length], rng.uniform(*options.snr_db))
        if rng.random() < options.codec_share:
            codec, bitrate = self.codecs[rng.integers(len(self.codecs))]
            window = sounds.codec_round_trip(window, codec, bitrate)
        return sounds.gain(window, rng.uniform(*options.gain_db))
