"""A cascade's screen on livestream-like clips: what it answers alone behind the energy
gate, by kind of clip; how many clips that say a policy word it answers alone; and, against
the model it was calibrated for, how many of that model's positives.

The screen comes from ``vigil train audio --screen-budget-s`` (its ``--out`` folder), with
the threshold calibrated there to keep 99% of its own model's positives; the model is the
one trained beside it (``checkpoint/`` and ``threshold`` in the same folder).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks import livestream
from modelzoo import audio_classifier, audio_training
from modelzoo import screen as cascade


def _metrics(trained: Path) -> dict:
    try:
        metrics = json.loads((trained / "metrics.json").read_text())
        metrics["screen"]["checkpoint"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"--screen {trained}: no screen in its metrics.json ({exc}); train "
                         "one with `vigil train audio --screen-budget-s`") from exc
    return metrics


def from_training(trained: Path) -> dict:
    """The manifest's ``screen`` entry for the screen trained into ``trained``."""
    screen = _metrics(trained)["screen"]
    return {"checkpoint": screen["checkpoint"], "threshold": screen["threshold"]}


def model_of(trained: Path) -> dict | None:
    """The model the screen in ``trained`` was calibrated for: its checkpoint and threshold
    (None where the folder holds no model)."""
    metrics = _metrics(trained)
    checkpoint = trained / "checkpoint"
    if "threshold" not in metrics or not checkpoint.exists():
        return None
    return {"checkpoint": str(checkpoint), "threshold": metrics["threshold"]}


def _scores(checkpoint: str, clips: list[livestream.LiveClip]) -> np.ndarray:
    model = audio_classifier.from_checkpoint(checkpoint)
    return audio_training.scores(model, [clip.samples for clip in clips])


def judge(clips: list[livestream.LiveClip], levels: list[float], floor_dbfs: float,
          trained: Path) -> dict:
    """What the screen trained into ``trained`` answers alone among the clips a gate at
    ``floor_dbfs`` passes; where its model is there too, what the cascade keeps of that
    model's positives there (:func:`modelzoo.screen.figures`)."""
    screen, model = from_training(trained), model_of(trained)
    behind = [clip for clip, level in zip(clips, levels) if level >= floor_dbfs]
    screen_scores = _scores(screen["checkpoint"], behind)
    alone = screen_scores < screen["threshold"]
    positive = np.array([clip.positive for clip in behind], dtype=bool)
    kinds = Counter(clip.kind for clip in behind)
    alone_by_kind = Counter(clip.kind for clip, skip in zip(behind, alone) if skip)
    judged = {**screen, "floor_dbfs": floor_dbfs, "behind_gate": len(behind),
              "answered_alone": int(alone.sum()),
              "answered_alone_share": float(alone.sum() / len(clips)),
              "by_kind": {kind: f"{alone_by_kind[kind]}/{total}"
                          for kind, total in sorted(kinds.items())},
              "positives_behind_gate": int(positive.sum()),
              "positives_answered_alone": int((positive & alone).sum())}
    if model is not None:
        judged["model"] = {**model, **cascade.figures(
            positive, _scores(model["checkpoint"], behind), model["threshold"],
            screen_scores, screen["threshold"])}
    return judged
