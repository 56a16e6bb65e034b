"""``vigil train audio``: train a language's audio classifier on labelled clips, stop and
calibrate on speech it has not heard, report, and hand it to the normal build.

The data is a ``manifest.jsonl`` (a folder holding one, or the file): one clip per line,
``path`` (relative to the manifest) and ``label`` (``nsfw``/``safe``, or 1/0), in any format
the audio handler decodes, and optionally ``span`` (where the labelled speech is) and
``word_span`` (where the policy word, or a near miss, is), in seconds. Clips are decoded
exactly as the handler decodes them (16 kHz mono) and split into train and held-out parts,
stratified by label.

Where clips have spans, training steps on windows of ``crop_s``: a positive clip's window
holds its word, a negative clip's its phrase (or near miss), and windows of positive clips
away from the word are negatives too, so the model learns the word and not the voice or
the room around it. Every window is augmented anew each epoch (modelzoo/augment.py). A
time budget bounds training.

A **shifted set** (``--shifted``: clips generated in the shifted style, or any other
recording conditions) is split in two halves: the *validation* half decides when to stop
(the ROC AUC of a stratified sample of ``judge_clips`` of it after each epoch, whole clips
as served) and takes part in calibration, whole; the *evaluation* half is only reported.
The threshold is the highest that meets the target (``fpr:0.01`` by default: the most
recall at a false-positive rate of at most 1%, the operating point published voice-safety
classifiers use; or ``recall:0.95``) on the held-out clips **and** on the shifted
validation half, so the false-positive rate the report promises holds on speech unlike the
training set too, not only on the training generator's own.

A rate is only as fine as the clips it is counted on: at most 1% of 50 negatives is none,
so the loudest of them alone would set the threshold. The report says how many false
positives the target allows on each calibration set (and warns where that is none), and
gives every rate with its 95% Wilson interval.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from handlers.audio_io import ClipDecoder
from handlers.runtime import cpu_has_native_bf16
from modelzoo.audio_classifier import CLIP_SAMPLES, POSITIVE_LABEL, SAMPLE_RATE_HZ
from modelzoo.augment import AugmentOptions, Augmenter

TARGET_KINDS = ("fpr", "recall")
SCORE_BATCH = 16
Model = nn.Module  # an AudioNsfwClassifier or a KeywordSpotter: logits(waveforms), forward


@dataclass(frozen=True, kw_only=True)
class AudioTrainingOptions:
    budget_s: float = 300.0  # training time, evaluations included
    max_epochs: int = 80
    batch_size: int = 32
    learning_rate: float = 1e-3
    # Judged and kept: the weights' exponential average over steps (a time constant of
    # 200 steps, about three epochs), steadier on unheard speech than the last step's.
    ema_decay: float = 0.995
    held_out: float = 0.25
    # Validation clips scored after each epoch (a stratified sample; all of them calibrate):
    # bounds the time judging takes from training, whatever the shifted set's size.
    judge_clips: int = 100
    patience: int = 8  # epochs without a better validation AUC before stopping...
    min_epochs: int = 4  # ...once past these
    crop_s: float = 2.0  # training windows, where clips have spans: a slow word and around it
    away_share: float = 0.3  # windows away from the word, per positive clip
    target: str = "fpr:0.01"
    augment: AugmentOptions = field(default_factory=AugmentOptions)
    seed: int = 0

    def __post_init__(self) -> None:
        parse_target(self.target)
        if not 0 < self.held_out < 1:
            raise ValueError("held_out must be a share in (0, 1)")
        if self.budget_s <= 0:
            raise ValueError("budget_s must be positive")
        if self.judge_clips < 4:
            raise ValueError("judge_clips must be at least 4")
        if not 0 <= self.ema_decay < 1:
            raise ValueError("ema_decay must be in [0, 1): 0 keeps the last step's weights")


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
    word_span: tuple[float, float] | None = None


def _seconds(pair: Any) -> tuple[float, float] | None:
    return (float(pair[0]), float(pair[1])) if pair else None


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
            clips.append(LabelledClip(manifest.parent / entry["path"],
                                      label in (POSITIVE_LABEL, 1, True),
                                      _seconds(entry.get("span")),
                                      _seconds(entry.get("word_span"))))
    positives = sum(c.positive for c in clips)
    if positives < 2 or len(clips) - positives < 2:
        raise ValueError(f"{manifest}: need at least 2 clips of each label, got "
                         f"{positives} nsfw and {len(clips) - positives} safe")
    return clips


def load_waveforms(clips: Sequence[LabelledClip], progress=None) -> list[np.ndarray]:
    """Every clip decoded as the handler decodes it (mono, 16 kHz, at most 20 s)."""
    decoder = ClipDecoder(sample_rate=SAMPLE_RATE_HZ, clip_samples=CLIP_SAMPLES)
    waves = []
    for clip in clips:
        waves.append(decoder.samples(clip.path.read_bytes()).numpy())
        if progress is not None:
            progress.update()
    return waves


def split(labels: np.ndarray, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out indices, stratified by label."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    train, held = train_test_split(indices, test_size=held_out, stratify=labels,
                                   random_state=seed)
    return np.sort(train), np.sort(held)


@dataclass
class LabelledSet:
    """Clips decoded, with their labels: what the model is scored on, whole."""

    name: str
    waves: list[np.ndarray]
    labels: np.ndarray

    def subset(self, name: str, indices: np.ndarray) -> LabelledSet:
        return LabelledSet(name, [self.waves[i] for i in indices], self.labels[indices])

    def sample(self, clips: int, seed: int) -> LabelledSet:
        """At most ``clips`` of the set, stratified by label, under the same name; the
        whole set where a label has too few clips to share out."""
        if len(self.labels) <= clips or min(self.labels.sum(), (~self.labels).sum()) < 2:
            return self
        _, kept = split(self.labels, clips / len(self.labels), seed)
        return self.subset(self.name, kept)


def scores(model: Model, waves: Sequence[np.ndarray]) -> np.ndarray:
    """``model``'s score of each clip, padded to 20 s as the handler pads it."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(waves), SCORE_BATCH):
            batch = np.zeros((len(waves[start:start + SCORE_BATCH]), CLIP_SAMPLES), np.float32)
            for row, wave in enumerate(waves[start:start + SCORE_BATCH]):
                batch[row, :len(wave)] = wave[:CLIP_SAMPLES]
            out.append(model(torch.from_numpy(batch)).float().numpy())
    return np.concatenate(out)


def training_precision() -> torch.autocast:
    """bf16 autocast where the CPU computes bf16 natively (AVX-512 BF16 or AMX): a
    training step of the spotter runs 1.7 times as fast there, so more epochs fit the
    budget. Elsewhere bf16 is emulated and slower, so fp32 (autocast off). Decided once;
    the context can be entered again and again."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_native_bf16())


def auc(labels: np.ndarray, values: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(labels, dtype=bool), values))


class Windows:
    """The training windows of an epoch, augmented: (inputs, labels) batches."""

    def __init__(self, clips: Sequence[LabelledClip], waves: list[np.ndarray],
                 options: AudioTrainingOptions, augmenter: Augmenter) -> None:
        self.clips, self.waves, self.options = clips, waves, options
        self.augmenter = augmenter
        self.rng = np.random.default_rng(options.seed)
        self.crop = int(options.crop_s * SAMPLE_RATE_HZ)
        # Windows need to know where the speech is; without spans, whole clips.
        self.whole = any(c.span is None and c.word_span is None for c in clips)

    def epoch(self, indices: np.ndarray) -> list[tuple[torch.Tensor, torch.Tensor]]:
        positives = [i for i in indices if self.clips[i].positive]
        items = [(i, "around") for i in indices]
        if not self.whole:
            count = int(self.options.away_share * len(positives))
            items += [(int(i), "away") for i in self.rng.choice(positives, count)]
        order = self.rng.permutation(len(items))
        batches = []
        for start in range(0, len(order), self.options.batch_size):
            windows, labels = [], []
            for index, kind in (items[j] for j in order[start:start + self.options.batch_size]):
                window = self._cut(index, kind)
                if window is not None:
                    windows.append(self.augmenter(window))
                    labels.append(int(kind == "around" and self.clips[index].positive))
            batches.append((torch.from_numpy(np.stack(windows)), torch.tensor(labels)))
        return batches

    def _cut(self, index: int, kind: str) -> np.ndarray | None:
        wave, clip = self.waves[index], self.clips[index]
        if self.whole:
            return np.pad(wave, (0, CLIP_SAMPLES - len(wave)))
        start_s, end_s = clip.word_span or clip.span
        start, end = int(start_s * SAMPLE_RATE_HZ), int(end_s * SAMPLE_RATE_HZ)
        length = len(wave)
        if kind == "away":  # the clip around its word: the word's absence is a negative
            ranges = [r for r in ((0, start - self.crop), (end, length - self.crop))
                      if r[1] > r[0]]
            if not ranges:
                return None
            low, high = ranges[self.rng.integers(len(ranges))]
        else:
            low = max(0, end - self.crop)
            high = max(low, min(start, length - self.crop))
        offset = int(self.rng.integers(low, high + 1))
        window = wave[offset:offset + self.crop]
        return np.pad(window, (0, self.crop - len(window))).astype(np.float32)


def train(model: Model, clips: Sequence[LabelledClip], waves: list[np.ndarray],
          options: AudioTrainingOptions, *, shifted: LabelledSet | None = None,
          on_epoch: Callable[[dict], None] | None = None) -> tuple[Model, dict[str, Any]]:
    """Train until the budget, the epochs or the patience run out, keeping the epoch whose
    averaged weights (``ema_decay``) have the best ROC AUC on (a sample of ``judge_clips``
    of) the shifted validation half (of the held-out clips without a shifted set). Returns
    the model and the sets it is to be reported on: ``held_out``, and where given
    ``shifted_validation`` and ``shifted`` (:class:`LabelledSet`), with ``history``,
    ``best_epoch``, ``train_seconds`` and ``train_clips``."""
    torch.manual_seed(options.seed)
    labels = np.array([c.positive for c in clips])
    train_idx, held_idx = split(labels, options.held_out, options.seed)
    everything = LabelledSet("held-out", waves, labels)
    sets = {"held_out": everything.subset("held-out", held_idx)}
    if shifted is not None:
        half_a, half_b = split(shifted.labels, 0.5, options.seed)
        sets["shifted_validation"] = shifted.subset("shifted validation", half_a)
        sets["shifted"] = shifted.subset("shifted evaluation", half_b)
    judge = sets.get("shifted_validation", sets["held_out"]).sample(options.judge_clips,
                                                                    options.seed)
    weights = len(train_idx) / (2 * np.bincount(labels[train_idx], minlength=2).clip(min=1))
    loss = nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=options.learning_rate)
    averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(options.ema_decay),
                             use_buffers=True)
    windows = Windows(clips, waves, options, Augmenter(options.augment, seed=options.seed))
    best = {"auc": -math.inf, "epoch": 0, "state": None}
    history: list[dict] = []
    precision = training_precision()  # the CPU's flags, read once rather than every step
    started = time.monotonic()
    for epoch in range(1, options.max_epochs + 1):
        model.train()
        running, seen = 0.0, 0
        for inputs, targets in windows.epoch(train_idx):
            optimizer.zero_grad()
            with precision:
                logits = model.logits(inputs)
            step = loss(logits.float(), targets)
            step.backward()
            optimizer.step()
            averaged.update_parameters(model)
            running += step.item() * len(targets)
            seen += len(targets)
        with precision:  # to rank the epochs; calibration scores in fp32
            judged = auc(judge.labels, scores(averaged.module, judge.waves))
        row = {"epoch": epoch, "train_loss": running / max(1, seen), "judged_on": judge.name,
               "auc": judged, "seconds": time.monotonic() - started}
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if judged > best["auc"]:
            best = {"auc": judged, "epoch": epoch,
                    "state": {k: v.detach().clone()
                              for k, v in averaged.module.state_dict().items()}}
        stalled = epoch >= options.min_epochs and epoch - best["epoch"] >= options.patience
        if stalled or time.monotonic() - started > options.budget_s:
            break
    model.load_state_dict(best["state"])
    return model.eval(), {"sets": sets, "history": history, "best_epoch": best["epoch"],
                          "train_seconds": time.monotonic() - started,
                          "train_clips": len(train_idx)}


def threshold_for(labels: np.ndarray, values: np.ndarray, target: str) -> float:
    """The threshold ``target`` asks for on one labelled set of scores.

    ``fpr:x``: the lowest threshold whose false-positive rate is at most x (the most recall
    that rate allows); ``recall:x``: the highest threshold whose recall is at least x.
    """
    kind, value = parse_target(target)
    labels = np.asarray(labels, dtype=bool)
    values = np.asarray(values, dtype=float)
    best = None
    for threshold in np.unique(np.concatenate([values, [1.0]])):  # recall and FPR fall
        flagged = values >= threshold
        recall = (flagged & labels).sum() / max(1, labels.sum())
        fpr = (flagged & ~labels).sum() / max(1, (~labels).sum())
        if kind == "fpr" and fpr <= value:
            best = threshold
            break
        if kind == "recall" and recall >= value:
            best = threshold
    return float(best if best is not None else 1.0)


def calibrate(sets: Sequence[tuple[np.ndarray, np.ndarray]], target: str) -> float:
    """The threshold that meets ``target`` on every (labels, scores) set: the highest of
    their own thresholds for an FPR target (every set's false positives held under it),
    the lowest for a recall target (every set's recall kept)."""
    thresholds = [threshold_for(labels, values, target) for labels, values in sets]
    return max(thresholds) if parse_target(target)[0] == "fpr" else min(thresholds)


def allowed_false_positives(labels: np.ndarray, target: str) -> int | None:
    """How many of the set's negatives an ``fpr`` target lets score at or above the
    threshold (0: the loudest negative alone sets it); None for a recall target."""
    kind, value = parse_target(target)
    if kind != "fpr":
        return None
    return math.floor(value * int((~np.asarray(labels, dtype=bool)).sum()) + 1e-9)


def wilson_interval(successes: int, trials: int) -> list[float]:
    """The 95% Wilson score interval of ``successes / trials`` ([0, 1] without trials):
    honest at 0 and at small counts, where the normal approximation is not."""
    if trials <= 0:
        return [0.0, 1.0]
    from scipy.stats import binomtest

    interval = binomtest(successes, trials).proportion_ci(0.95, method="wilson")
    return [float(interval.low), float(interval.high)]


def rates(labels: np.ndarray, values: np.ndarray, threshold: float) -> dict[str, Any]:
    """Precision, recall and false-positive rate of ``values >= threshold`` (the two rates
    with their 95% intervals), ROC AUC, and the recall a 1% false-positive rate would allow,
    on one labelled set. Precision is None when nothing is flagged (metrics.json stays
    strict JSON)."""
    labels = np.asarray(labels, dtype=bool)
    flagged = np.asarray(values) >= threshold
    true_positives = int((flagged & labels).sum())
    false_positives = int((flagged & ~labels).sum())
    negatives = int((~labels).sum())
    at_one_percent = threshold_for(labels, values, "fpr:0.01")
    return {"clips": int(len(labels)), "positives": int(labels.sum()),
            "negatives": negatives,
            "precision": true_positives / flagged.sum() if flagged.any() else None,
            "recall": true_positives / max(1, labels.sum()),
            "recall_ci95": wilson_interval(true_positives, int(labels.sum())),
            "fpr": false_positives / max(1, negatives),
            "fpr_ci95": wilson_interval(false_positives, negatives),
            "auc": auc(labels, values),
            "recall_at_1pct_fpr": float(((np.asarray(values) >= at_one_percent) & labels)
                                        .sum() / max(1, labels.sum()))}


def write_report(out: Path, *, language: str, metrics: dict[str, Any],
                 curves: dict[str, tuple[np.ndarray, np.ndarray]],
                 more: Sequence[str] = ()) -> list[Path]:
    """metrics.json, report.md (``more`` lines at its end) and roc_pr.png (ROC and
    precision-recall of each set)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float,
                                                 allow_nan=False))
    figure, (roc, pr) = plt.subplots(1, 2, figsize=(10, 4))
    for name, (labels, values) in curves.items():
        figures = metrics[name]
        fpr, tpr, _ = roc_curve(labels, values)
        roc.plot(fpr, tpr, label=f"{name.replace('_', ' ')} (AUC {figures['auc']:.3f})")
        roc.scatter([figures["fpr"]], [figures["recall"]], zorder=3)
        precision, recall, _ = precision_recall_curve(labels, values)
        pr.plot(recall, precision, label=name.replace("_", " "))
    roc.set(xlabel="false-positive rate", ylabel="recall",
            title=f"ROC; dots: threshold {metrics['threshold']:.3f}")
    roc.legend()
    pr.set(xlabel="recall", ylabel="precision", title="precision-recall")
    pr.legend()
    figure.suptitle(f"audio_nsfw_{language}")
    figure.tight_layout()
    figure.savefig(out / "roc_pr.png", dpi=110)
    plt.close(figure)
    rows = [f"| {name.replace('_', ' ')} | {m['clips']} ({m['positives']} nsfw) | "
            f"{percent(m['precision'])} | {with_interval(m['recall'], m['recall_ci95'])} | "
            f"{with_interval(m['fpr'], m['fpr_ci95'])} | {m['auc']:.3f} | "
            f"{percent(m['recall_at_1pct_fpr'])} |"
            for name in curves for m in (metrics[name],)]
    lines = [f"# audio_nsfw_{language}: training report", "",
             f"{metrics['size']} model, trained on {metrics['train_clips']} clips in "
             f"{metrics['train_seconds']:.0f} s ({metrics['epochs_run']} epochs, best "
             f"{metrics['best_epoch']}, judged on {metrics['judged_on']}). Threshold "
             f"{metrics['threshold']:.4f} for {metrics['target']}, calibrated on "
             f"{' and '.join(metrics['calibrated_on'])}.", "",
             *calibration_lines(metrics), "",
             "| set | clips | precision | recall (95% interval) | false-positive rate (95% "
             "interval) | ROC AUC | recall at 1% FPR |", "|---|---|---|---|---|---|---|",
             *rows, "", "![ROC and precision-recall](roc_pr.png)", "", *more]
    (out / "report.md").write_text("\n".join(lines))
    return [out / "metrics.json", out / "report.md", out / "roc_pr.png"]


def calibration_lines(metrics: dict[str, Any]) -> list[str]:
    """What the target allows on each calibration set, and a warning where a set is too
    small to resolve it."""
    lines = []
    for entry in metrics.get("calibration", []):
        allowed = entry["allowed_false_positives"]
        if allowed is None:
            continue
        lines.append(f"- {entry['set']}: {entry['negatives']} negatives; {metrics['target']} "
                     f"lets at most {allowed} of them be flagged.")
        if allowed == 0:
            lines.append(f"  **Warning**: {too_few_negatives(entry, metrics['target'])}")
    return lines


def too_few_negatives(entry: dict[str, Any], target: str) -> str:
    """Why a calibration set with no false positive to spare makes a brittle threshold."""
    needed = math.ceil(3 / parse_target(target)[1])
    return (f"{entry['set']} holds too few negatives to resolve {target}: its loudest "
            f"negative alone sets the threshold. Give it {needed} or more (three false "
            "positives' worth).")


def percent(value: float | None) -> str:
    """A rate as a percentage, "n/a" where it is undefined (precision of nothing flagged)."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


def with_interval(value: float, interval: Sequence[float]) -> str:
    """``12.0% (8.1-17.4%)``: a rate and its interval."""
    return f"{percent(value)} ({100 * interval[0]:.1f}-{100 * interval[1]:.1f}%)"
