"""``vigil audio evaluate``: a model trained by ``vigil train audio`` (its ``--out``
folder) judged on labelled clips it has never seen, at its calibrated threshold, and, when
it was trained with a screen, what the cascade keeps of the model's positives there.

The answer to "speech generated in yet other ways": generate a set in another style or seed
and judge the model on it, with 95% intervals on every rate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from modelzoo import audio_classifier, audio_training, screen


def trained_metrics(trained: Path) -> dict[str, Any]:
    """The training's metrics.json; ValueError when ``trained`` is no trained folder."""
    try:
        metrics = json.loads((trained / "metrics.json").read_text())
        float(metrics["threshold"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{trained} is not a `vigil train audio --out` folder: {exc}") from exc
    return metrics


def evaluate(trained: Path, clips: list, waves: list) -> dict[str, Any]:
    """The model's rates on the labelled ``clips`` (decoded as ``waves``) at its threshold;
    with a screen, :func:`modelzoo.screen.figures` of the cascade."""
    metrics = trained_metrics(trained)
    labels = np.array([clip.positive for clip in clips], dtype=bool)
    model = audio_classifier.from_checkpoint(str(trained / "checkpoint"))
    scores = audio_training.scores(model, waves)
    threshold = float(metrics["threshold"])
    result: dict[str, Any] = {"threshold": threshold,
                              "model": audio_training.rates(labels, scores, threshold)}
    if "screen" in metrics:
        screening = audio_classifier.from_checkpoint(metrics["screen"]["checkpoint"])
        result["screen"] = {"threshold": metrics["screen"]["threshold"], **screen.figures(
            labels, scores, threshold, audio_training.scores(screening, waves),
            metrics["screen"]["threshold"])}
    return result


def summary(result: dict[str, Any]) -> str:
    """What ``evaluate`` found, in a few lines."""
    percent, interval = audio_training.percent, audio_training.with_interval
    m = result["model"]
    lines = [f"{m['clips']} clips ({m['positives']} nsfw) at threshold "
             f"{result['threshold']:.4f}: recall {interval(m['recall'], m['recall_ci95'])}, "
             f"FPR {interval(m['fpr'], m['fpr_ci95'])}, AUC {m['auc']:.3f}, recall at 1% "
             f"FPR {percent(m['recall_at_1pct_fpr'])}"]
    if "screen" in result:
        s = result["screen"]
        kept = interval(s["model_positives_kept"], s["model_positives_kept_ci95"])
        lines.append(f"screen at {s['threshold']:.4f}: answers {percent(s['screened_out'])} "
                     f"alone ({percent(s['screened_out_negatives'])} of the negatives); keeps "
                     f"{kept} of the model's {s['model_positives']} positives; recall "
                     f"{percent(s['recall_model'])} -> {percent(s['recall_cascade'])}")
    return "\n".join(lines)
