"""``vigil train audio``: fine-tune the per-language Wav2Vec2 classifier on labelled clips,
calibrate its threshold on a held-out split, report, and hand it to the normal build.

The data is a ``manifest.jsonl`` (a folder holding one, or the file): one clip per line,
``path`` (relative to the manifest) and ``label`` (``nsfw``/``safe``, or 1/0), in any format
the audio handler decodes, and optionally ``span`` (``[start_s, end_s]``: where the labelled
speech is). Clips are decoded exactly as the handler does (16 kHz mono, padded or cut to
20 s) and split into train and held-out parts stratified by label. Where clips have spans,
training steps on windows of ``crop_s`` around them (five times cheaper per step, and with
max pooling over time a window is what the whole clip shows the head); the held-out loss,
on whole clips as they are served, decides when to stop (early stopping, the best epoch
kept).

The threshold is chosen on the held-out scores for a target: ``fpr:0.01`` (the default:
the highest recall at a false-positive rate of at most 1%, the operating point published
voice-safety classifiers use) or ``recall:0.95`` (the highest threshold keeping 95% recall,
like the min-view triage).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from handlers.audio_io import ClipDecoder
from modelzoo.audio_classifier import (CLIP_SAMPLES, POSITIVE_LABEL, SAMPLE_RATE_HZ,
                                       AudioNsfwClassifier)

TARGET_KINDS = ("fpr", "recall")


@dataclass(frozen=True, kw_only=True)
class AudioTrainingOptions:
    epochs: int = 40
    batch_size: int = 16
    learning_rate: float = 1e-3
    held_out: float = 0.25
    patience: int = 5  # epochs without a better held-out loss before stopping...
    # ...once past these: from scratch the loss sits near log 2 for a few epochs while the
    # front end finds the words, and held-out noise there is not a plateau.
    min_epochs: int = 12
    crop_s: float = 4.0  # training windows around labelled spans, where clips have them
    target: str = "fpr:0.01"
    seed: int = 0

    def __post_init__(self) -> None:
        parse_target(self.target)
        if not 0 < self.held_out < 1:
            raise ValueError("held_out must be a share in (0, 1)")


def parse_target(target: str) -> tuple[str, float]:
    """``fpr:0.01`` or ``recall:0.95`` as (kind, value); raises ValueError otherwise."""
    kind, _, value = target.partition(":")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if kind not in TARGET_KINDS or not 0 < number < 1:
        raise ValueError(f"target {target!r}: use fpr:<share> or recall:<share>, e.g. fpr:0.01")
    return kind, number


@dataclass(frozen=True)
class LabelledClip:
    path: Path
    positive: bool
    span: tuple[float, float] | None = None  # seconds


def read_labelled(source: Path) -> list[LabelledClip]:
    """The clips of a manifest.jsonl (or of the one in folder ``source``)."""
    manifest = source / "manifest.jsonl" if source.is_dir() else source
    clips = []
    with open(manifest, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            entry = json.loads(line)
            label = entry.get("label")
            if label not in (POSITIVE_LABEL, "safe", 0, 1, True, False):
                raise ValueError(f"{manifest}:{number}: label {label!r} is not nsfw/safe/1/0")
            span = entry.get("span")
            clips.append(LabelledClip(manifest.parent / entry["path"],
                                      label in (POSITIVE_LABEL, 1, True),
                                      (float(span[0]), float(span[1])) if span else None))
    positives = sum(c.positive for c in clips)
    if positives < 2 or len(clips) - positives < 2:
        raise ValueError(f"{manifest}: need at least 2 clips of each label, got "
                         f"{positives} nsfw and {len(clips) - positives} safe")
    return clips


def windows(waves: torch.Tensor, spans: list[tuple[float, float] | None], indices,
            crop_s: float, generator: torch.Generator) -> torch.Tensor:
    """For each index, a ``crop_s`` window covering as much of its span as fits, at a random
    placement; the whole clip where a clip has no span."""
    crop = int(crop_s * SAMPLE_RATE_HZ)
    if any(spans[i] is None for i in indices):
        return waves[indices]
    out = []
    for i in indices:
        start, end = (int(t * SAMPLE_RATE_HZ) for t in spans[i])
        lowest = max(0, min(end, waves.shape[1]) - crop)
        highest = max(lowest, min(start, waves.shape[1] - crop))
        offset = int(torch.randint(lowest, highest + 1, (1,), generator=generator))
        out.append(waves[i, offset:offset + crop])
    return torch.stack(out)


def load_waveforms(clips: list[LabelledClip], progress=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every clip decoded as the handler decodes it: ``(N, 20 s)`` and labels ``(N,)``."""
    decoder = ClipDecoder(sample_rate=SAMPLE_RATE_HZ, clip_samples=CLIP_SAMPLES)
    waves = []
    for clip in clips:
        waves.append(decoder.decode(clip.path.read_bytes()))
        if progress is not None:
            progress.update()
    return torch.stack(waves), torch.tensor([c.positive for c in clips], dtype=torch.long)


def split(labels: torch.Tensor, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out indices, stratified by label."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    train, held = train_test_split(indices, test_size=held_out, stratify=labels.numpy(),
                                   random_state=seed)
    return np.sort(train), np.sort(held)


def _scores(model: AudioNsfwClassifier, waves: torch.Tensor, batch_size: int) -> torch.Tensor:
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(waves[i:i + batch_size]) for i in range(0, len(waves),
                                                                         batch_size)])


def _held_out_loss(model: AudioNsfwClassifier, waves: torch.Tensor, labels: torch.Tensor,
                   loss: nn.Module, batch_size: int) -> float:
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for i in range(0, len(waves), batch_size):
            total += loss(model.logits(waves[i:i + batch_size]),
                          labels[i:i + batch_size]).item() * len(waves[i:i + batch_size])
    return total / len(waves)


def train(model: AudioNsfwClassifier, waves: torch.Tensor, labels: torch.Tensor,
          options: AudioTrainingOptions, *, spans: list | None = None,
          on_epoch: Callable[[dict], None] | None = None
          ) -> tuple[AudioNsfwClassifier, dict[str, Any]]:
    """Train with early stopping on held-out loss; returns the best model and the held-out
    split's labels and scores (``history``, ``held_out``, ``train_seconds``)."""
    torch.manual_seed(options.seed)
    train_idx, held_idx = split(labels, options.held_out, options.seed)
    counts = torch.bincount(labels[train_idx], minlength=2).float()
    weights = counts.sum() / (2 * counts.clamp(min=1))  # balanced classes
    loss = nn.CrossEntropyLoss(weight=weights)
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=options.learning_rate)
    generator = torch.Generator().manual_seed(options.seed)
    # The held-out loss is taken on what training sees (fixed windows where there are spans),
    # so it tracks learning; the held-out scores that calibrate are on whole clips.
    held_inputs = windows(waves, spans or [None] * len(waves), held_idx, options.crop_s,
                          torch.Generator().manual_seed(options.seed))
    best = {"loss": math.inf, "epoch": 0, "state": None}
    history = []
    started = time.monotonic()
    for epoch in range(1, options.epochs + 1):
        model.train()
        order = train_idx[torch.randperm(len(train_idx), generator=generator).numpy()]
        running = 0.0
        for i in range(0, len(order), options.batch_size):
            batch = order[i:i + options.batch_size]
            optimizer.zero_grad()
            inputs = windows(waves, spans or [None] * len(waves), batch, options.crop_s,
                             generator)
            step_loss = loss(model.logits(inputs), labels[batch])
            step_loss.backward()
            optimizer.step()
            running += step_loss.item() * len(batch)
        held = _held_out_loss(model, held_inputs, labels[held_idx], loss, options.batch_size)
        row = {"epoch": epoch, "train_loss": running / len(order), "held_out_loss": held,
               "seconds": time.monotonic() - started}
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if held < best["loss"]:
            best = {"loss": held, "epoch": epoch,
                    "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        elif epoch >= options.min_epochs and epoch - best["epoch"] >= options.patience:
            break
    model.load_state_dict(best["state"])
    seconds = time.monotonic() - started
    scores = _scores(model, waves[held_idx], options.batch_size)
    return model.eval(), {"history": history, "best_epoch": best["epoch"],
                          "train_seconds": seconds, "held_out_labels": labels[held_idx],
                          "held_out_scores": scores, "train_clips": len(train_idx)}


def calibrate(labels: np.ndarray, scores: np.ndarray, target: str) -> dict[str, float]:
    """The threshold for ``target`` on labelled scores, and what it gives there.

    ``fpr:x``: the lowest threshold whose false-positive rate is at most x (the most recall
    that rate allows); ``recall:x``: the highest threshold whose recall is at least x.
    """
    kind, value = parse_target(target)
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    candidates = np.unique(np.concatenate([scores, [1.0]]))
    best = None
    for threshold in candidates:  # ascending: recall falls, FPR falls
        flagged = scores >= threshold
        recall = (flagged & labels).sum() / max(1, labels.sum())
        fpr = (flagged & ~labels).sum() / max(1, (~labels).sum())
        if kind == "fpr" and fpr <= value:
            best = threshold
            break
        if kind == "recall" and recall >= value:
            best = threshold
    threshold = float(best if best is not None else 1.0)
    return {"threshold": threshold, **rates(labels, scores, threshold)}


def rates(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and false-positive rate of ``scores >= threshold``, and ROC AUC."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels, dtype=bool)
    flagged = np.asarray(scores) >= threshold
    true_positives = int((flagged & labels).sum())
    return {"precision": true_positives / flagged.sum() if flagged.any() else math.nan,
            "recall": true_positives / max(1, labels.sum()),
            "fpr": int((flagged & ~labels).sum()) / max(1, (~labels).sum()),
            "auc": float(roc_auc_score(labels, scores))}


def write_report(out: Path, *, language: str, metrics: dict[str, Any],
                 labels: np.ndarray, scores: np.ndarray) -> list[Path]:
    """metrics.json, report.md and roc_pr.png (ROC and precision-recall on held-out clips)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
    figure, (roc, pr) = plt.subplots(1, 2, figsize=(9, 4))
    fpr, tpr, _ = roc_curve(labels, scores)
    roc.plot(fpr, tpr)
    roc.scatter([metrics["fpr"]], [metrics["recall"]], color="red", zorder=3,
                label=f"threshold {metrics['threshold']:.3f}")
    roc.set(xlabel="false-positive rate", ylabel="recall",
            title=f"ROC, AUC {metrics['auc']:.3f}")
    roc.legend()
    precision, recall, _ = precision_recall_curve(labels, scores)
    pr.plot(recall, precision)
    if not math.isnan(metrics["precision"]):
        pr.scatter([metrics["recall"]], [metrics["precision"]], color="red", zorder=3)
    pr.set(xlabel="recall", ylabel="precision", title="precision-recall")
    figure.suptitle(f"audio_nsfw_{language}: held-out clips")
    figure.tight_layout()
    figure.savefig(out / "roc_pr.png", dpi=110)
    plt.close(figure)
    lines = [f"# audio_nsfw_{language}: training report", "",
             f"Held-out split: {metrics['held_out_clips']} clips "
             f"({metrics['held_out_positives']} nsfw); trained on {metrics['train_clips']} "
             f"in {metrics['train_seconds']:.0f} s ({metrics['epochs_run']} epochs, best "
             f"{metrics['best_epoch']}).", "",
             "| target | threshold | precision | recall | false-positive rate | ROC AUC |",
             "|---|---|---|---|---|---|",
             f"| {metrics['target']} | {metrics['threshold']:.4f} | "
             f"{_percent(metrics['precision'])} | {_percent(metrics['recall'])} | "
             f"{_percent(metrics['fpr'])} | {metrics['auc']:.3f} |", "",
             "![ROC and precision-recall](roc_pr.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    return [out / "metrics.json", out / "report.md", out / "roc_pr.png"]


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"

