"""20 s clips that sound like what an audio classifier will hear, for calibrating the int8
quantisers and for the accuracy guard that decides whether an engine may replace eager.

Gaussian noise, which every model example used to be, all looks alike once a clip is
normalised, so an engine that ignored half of every clip passed a check on it. These sets
mix speech (espeak-ng, in the training style), near silence, loud noise, music, and pairs of
clips that differ only in their last ten seconds, so an engine that does not react to the
end of a clip as eager does fails. Calibration and checks use disjoint seeds.
"""

from __future__ import annotations

import functools
import random

import numpy as np
import torch

from modelzoo import sounds, speech

CLIP_SECONDS = 20
TAIL_SECONDS = 10
CALIBRATION_SEED, CHECK_SEED = 1, 2
KINDS = ("speech", "speech", "silence", "noise", "music", "tail pair")


def _speech(index: int, seed: int, language: str) -> np.ndarray:
    options = speech.SpeechSetOptions(language=language, clips=4, seconds=CLIP_SECONDS,
                                      seed=seed)
    word = speech.DEFAULT_POLICY_WORDS[index % len(speech.DEFAULT_POLICY_WORDS)] \
        if index % 2 else None
    samples, _ = speech.make_clip(random.Random(f"check/{seed}/{index}"),
                                  np.random.default_rng([seed, index]), options,
                                  "positive" if word else "negative", word)
    return samples


def _clip(kind: str, index: int, seed: int, language: str) -> np.ndarray:
    samples = CLIP_SECONDS * speech.SAMPLE_RATE_HZ
    rng = np.random.default_rng([seed, index, 7])
    if kind == "speech":
        return _speech(index, seed, language)
    if kind == "silence":
        return (1e-4 * rng.standard_normal(samples)).astype(np.float32)
    if kind == "noise":
        return 0.5 * sounds.BACKGROUNDS[("white", "pink", "brown")[index % 3]](rng, samples)
    return 0.2 * sounds.BACKGROUNDS[("chords", "plucks")[index % 2]](rng, samples)


@functools.lru_cache(maxsize=4)
def representative(count: int, seed: int, language: str = "en") -> torch.Tensor:
    """``count`` clips ``(count, samples)`` of every kind in turn; a "tail pair" adds a
    speech clip and the same clip with its last ten seconds from another one, side by
    side. The same ``seed`` gives the same clips."""
    clips: list[np.ndarray] = []
    index = 0
    while len(clips) < count:
        kind = KINDS[index % len(KINDS)]
        if kind == "tail pair":
            first = _speech(index, seed, language)
            other = _clip(("speech", "music", "noise")[index % 3], index + 1000, seed, language)
            tail = -TAIL_SECONDS * speech.SAMPLE_RATE_HZ
            clips += [first, np.concatenate([first[:tail], other[tail:]])]
        else:
            clips.append(_clip(kind, index, seed, language))
        index += 1
    return torch.from_numpy(np.stack(clips[:count]).astype(np.float32))


def fitted(clips: torch.Tensor, samples: int) -> torch.Tensor:
    """``clips`` at a model's input length: their last ``samples`` (where the tail pairs
    differ) when that is shorter, repeated to fill it when longer."""
    if samples <= clips.shape[-1]:
        return clips[..., -samples:]
    repeats = -(-samples // clips.shape[-1])
    return clips.repeat(1, repeats)[..., -samples:]


def batches(sizes: tuple[int, ...], seed: int, samples: int) -> list[torch.Tensor]:
    """Representative clips of ``samples`` each in batches of ``sizes``, all of them
    different clips."""
    clips = fitted(representative(sum(sizes), seed), samples)
    starts = np.cumsum((0, *sizes))
    return [clips[start:start + size] for start, size in zip(starts, sizes)]
