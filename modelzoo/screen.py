"""The cascade's screen, from training to the archive: a keyword spotter a quarter the
width of the one ``vigil train audio`` trains (its cost is mostly the fixed front end, a
two-hundredth of wav2vec2-base's), trained on the same clips as the archive's model, with a
threshold calibrated to keep ``KEEP`` of that model's positives on every calibration set,
and traced to TorchScript into the archive (handlers/screen.py serves it).

The screen is calibrated against the model it sits in front of, not against the labels:
what it promises is that the cascade flags what the model alone would flag, bar 1%.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from handlers.screen import SCREEN_FILE
from modelzoo import accuracy, audio_classifier, audio_training, engines
from modelzoo.audio_training import percent
from modelzoo.keyword_spotter import KeywordSpotter, SpotterConfig

KEEP = 0.99  # the share of the model's positives the screen must pass, on every set
# The spotter at a quarter of its width and without its 2-D stem: it must cost the model's
# small share, and a screen only has to rank, not to hear every speaker.
SCREEN_CONFIG = SpotterConfig(channels=32, stem_channels=0, strides=(1, 2, 2, 2, 1))
TIMED_CLIPS = 8
TRACE_TOLERANCE = 1e-4


def new_screen(seed: int) -> KeywordSpotter:
    """A randomly initialised screen; ``seed`` makes it reproducible."""
    torch.manual_seed(seed)
    return KeywordSpotter(SCREEN_CONFIG).eval()


def model_positives(model_scores: np.ndarray, model_threshold: float) -> np.ndarray:
    return np.asarray(model_scores) >= model_threshold


def calibrate(sets: list[tuple[np.ndarray, np.ndarray]], keep: float = KEEP) -> float:
    """The highest screen threshold that passes at least ``keep`` of the model's positives
    on every (model positives, screen scores) set; 0 (screen nothing out) when a set has
    no positive to keep."""
    if any(not positives.any() for positives, _ in sets):
        return 0.0
    return audio_training.calibrate(sets, f"recall:{keep}")


def figures(labels: np.ndarray, model_scores: np.ndarray, model_threshold: float,
            screen_scores: np.ndarray, screen_threshold: float) -> dict[str, Any]:
    """On one labelled set: the share of clips (and of negatives) the screen answers alone,
    the model's positives it passes (with a 95% interval), and recall and FPR against the
    labels of the model alone and of the cascade."""
    labels = np.asarray(labels, dtype=bool)
    passed = np.asarray(screen_scores) >= screen_threshold
    by_model = model_positives(model_scores, model_threshold)
    cascade = by_model & passed
    kept = int(cascade.sum())

    def rate(flagged: np.ndarray, among: np.ndarray) -> float:
        return float((flagged & among).sum() / max(1, among.sum()))

    return {"clips": int(len(labels)), "screened_out": float(1 - passed.mean()),
            "screened_out_negatives": rate(~passed, ~labels),
            "model_positives": int(by_model.sum()),
            "model_positives_answered_alone": int(by_model.sum()) - kept,
            "model_positives_kept": kept / max(1, int(by_model.sum())),
            "model_positives_kept_ci95": audio_training.wilson_interval(kept,
                                                                        int(by_model.sum())),
            "recall_model": rate(by_model, labels), "recall_cascade": rate(cascade, labels),
            "fpr_model": rate(by_model, ~labels), "fpr_cascade": rate(cascade, ~labels),
            "screen_auc": audio_training.auc(labels, screen_scores)}


def seconds_per_clip(model: torch.nn.Module, waves: list[np.ndarray]) -> float:
    """CPU wall time per clip of ``model`` on ``TIMED_CLIPS`` clips at once, after a
    warm-up, in this process: the relative cost of the screen and the model."""
    clips = waves[:TIMED_CLIPS]
    audio_training.scores(model, clips)
    started = time.perf_counter()
    audio_training.scores(model, clips)
    return (time.perf_counter() - started) / len(clips)


def cost(screen_s: float, model_s: float, screened_out: float) -> dict[str, float]:
    """Seconds per clip of the model alone and of the cascade, which runs the screen on
    every clip and the model on those it passes."""
    cascade = screen_s + (1 - screened_out) * model_s
    return {"screen_s": screen_s, "model_s": model_s, "cascade_s": cascade,
            "saving": model_s / cascade}


def trace_into(checkpoint: str, folder: Path) -> Path:
    """The screen saved in ``checkpoint``, traced to TorchScript as ``folder/screen.pt``;
    raises :class:`~modelzoo.accuracy.EngineMismatch` when the trace answers unlike it."""
    screen = audio_classifier.from_checkpoint(checkpoint).eval()
    example = screen.example(2, torch.Generator().manual_seed(0))
    traced = engines.trace(screen, example)
    with torch.inference_mode():
        difference = float((traced(example) - screen(example)).abs().max())
    if difference > TRACE_TOLERANCE:
        raise accuracy.EngineMismatch(f"the traced screen moves scores by {difference:.2g}")
    folder.mkdir(parents=True, exist_ok=True)
    torch.jit.save(traced, str(folder / SCREEN_FILE))
    return folder / SCREEN_FILE


def report_lines(screen: dict[str, Any]) -> list[str]:
    """The cascade's section of report.md: per set, what the screen answers alone, the
    model's positives it keeps, recall and FPR with and without it, and the cost."""
    seconds = screen["seconds_per_clip"]
    rows = [f"| {name.replace('_', ' ')} | {percent(f['screened_out'])} "
            f"({percent(f['screened_out_negatives'])}) | "
            f"{percent(f['model_positives_kept'])} of {f['model_positives']} "
            f"({percent(f['model_positives_kept_ci95'][0])}-"
            f"{percent(f['model_positives_kept_ci95'][1])}) | "
            f"{percent(f['recall_model'])} / {percent(f['recall_cascade'])} | "
            f"{percent(f['fpr_model'])} / {percent(f['fpr_cascade'])} | "
            f"{f['screen_auc']:.3f} | {1000 * f['cascade_s']:.1f} ms ({f['saving']:.2f}x) |"
            for name, f in screen["sets"].items()]
    return ["## The cascade's screen", "",
            f"A screen trained for {screen['train_seconds']:.0f} s (best epoch "
            f"{screen['best_epoch']}), threshold {screen['threshold']:.6f}: the highest that "
            f"passes at least {percent(screen['keep'])} of the model's positives on "
            f"{' and '.join(screen['calibrated_on'])}. Per clip here the screen costs "
            f"{1000 * seconds['screen_s']:.1f} ms and the model {1000 * seconds['model_s']:.1f} "
            "ms (in-process, 8 clips at once).", "",
            "| set | answered by the screen alone (of the negatives) | the model's positives "
            "kept (95% "
            "interval) | recall: model / cascade | FPR: model / cascade | screen ROC AUC | "
            "cascade per clip (vs the model) |", "|---|---|---|---|---|---|---|", *rows, ""]
