"""The energy gate on livestream-like clips: what share it keeps from the model, per floor,
and that it keeps no speech (so no positive) from it; and what trimming the clips it passes
to their audible span would take off the model's input.

The level is the one the handler measures (``handlers/energy.py``): the loudest 20 ms
frame's RMS in dBFS. The mix is ``benchmarks/livestream.py``'s.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks import livestream, screening
from handlers.energy import FRAME_SECONDS, frame_levels_dbfs, loudest_frame_dbfs

FLOORS_DBFS = (-70.0, -60.0, -50.0, -40.0)
MANIFEST_FLOOR_DBFS = -60.0  # archives/manifest.yaml's energy_gate_dbfs


def levels(clips: list[livestream.LiveClip]) -> list[float]:
    return [loudest_frame_dbfs(torch.from_numpy(clip.samples), livestream.SAMPLE_RATE_HZ)
            for clip in clips]


def judge(clips: list[livestream.LiveClip], measured: list[float], floor: float) -> dict:
    """What a gate at ``floor`` does to ``clips`` whose levels are ``measured``."""
    skipped = [level < floor for level in measured]
    by_kind = Counter(clip.kind for clip in clips)
    skipped_by_kind = Counter(clip.kind for clip, skip in zip(clips, skipped) if skip)
    return {"floor_dbfs": floor, "skipped_share": sum(skipped) / len(clips),
            "skipped_by_kind": {kind: f"{skipped_by_kind[kind]}/{total}"
                                for kind, total in sorted(by_kind.items())},
            "positives_skipped": sum(1 for clip, skip in zip(clips, skipped)
                                     if skip and clip.positive),
            "speech_skipped": skipped_by_kind["speech"]}


def trimmable_share(samples: np.ndarray, floor: float) -> float:
    """The share of a clip before its first and after its last frame at ``floor`` or over:
    what trimming the clip to its audible span would take off the model's input."""
    audible = (frame_levels_dbfs(torch.from_numpy(samples), livestream.SAMPLE_RATE_HZ)
               >= floor).nonzero().flatten()
    if audible.numel() == 0:
        return 1.0
    frames = len(samples) // int(livestream.SAMPLE_RATE_HZ * FRAME_SECONDS)
    return 1.0 - (int(audible[-1]) - int(audible[0]) + 1) / max(1, frames)


def trimming(clips: list[livestream.LiveClip], measured: list[float], floor: float) -> dict:
    """What trimming each clip the gate at ``floor`` passes to its audible span would save:
    the mean share of the clip it would cut, over all of them and by kind."""
    shares: dict[str, list[float]] = {}
    for clip, level in zip(clips, measured):
        if level >= floor:
            shares.setdefault(clip.kind, []).append(trimmable_share(clip.samples, floor))
    every = [share for kind_shares in shares.values() for share in kind_shares]
    return {"floor_dbfs": floor, "clips": len(every),
            "mean_share": float(np.mean(every)) if every else 0.0,
            "by_kind": {kind: round(float(np.mean(values)), 4)
                        for kind, values in sorted(shares.items())}}


def run(count: int, seed: int = 0, screen: Path | None = None) -> dict:
    """The gate at every floor of :data:`FLOORS_DBFS`; with ``screen`` (a `vigil train
    audio` folder with a screen), also what that screen answers alone behind the manifest's
    floor (``benchmarks.screening.judge``)."""
    with tqdm(total=count, desc="livestream-like clips", unit="clip") as progress:
        clips = livestream.mix(count, seed, progress)
    measured = levels(clips)
    speech_levels = [level for clip, level in zip(clips, measured) if clip.kind == "speech"]
    positives = [level for clip, level in zip(clips, measured) if clip.positive]
    return {"clips": count, "seed": seed, "mix": dict(Counter(clip.kind for clip in clips)),
            "positives": len(positives),
            "quietest_speech_dbfs": round(min(speech_levels), 1),
            "quietest_positive_dbfs": round(min(positives), 1),
            "floors": [judge(clips, measured, floor) for floor in FLOORS_DBFS],
            "trimming": trimming(clips, measured, MANIFEST_FLOOR_DBFS),
            **({"screen": screening.judge(clips, measured, MANIFEST_FLOOR_DBFS, screen)}
               if screen else {})}
