"""Train the VRT fusion head from a table of precomputed embeddings and labels.

The table (Parquet, or CSV with JSON lists) has ``post_id``, ``label`` and one column per
modality (``visual``, ``text``, ``audio``) holding the embedding or null. Class weights
balance the skewed labels; the head kept is the epoch with the best validation macro-F1.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from handlers.fusion_input import MODALITIES, fusion_row
from modelzoo.fusion import DEFAULT_LABELS, FusionHead

logger = logging.getLogger(__name__)
CLASS_SHARES = (0.55, 0.09, 0.08, 0.09, 0.05, 0.08, 0.06)  # skewed towards safe


@dataclass(frozen=True)
class TrainingOptions:
    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 1e-3
    validation_share: float = 0.2
    hidden: int = 256
    seed: int = 0


def generate_embeddings(posts: int, dims: dict[str, int], *, seed: int = 0,
                        missing_share: float = 0.2, labels=DEFAULT_LABELS) -> pd.DataFrame:
    """Embeddings with a learnable signal: a per-class offset per modality, plus noise;
    each modality is missing from about ``missing_share`` of posts."""
    rng = np.random.default_rng(seed)
    classes = rng.choice(len(labels), size=posts, p=CLASS_SHARES[:len(labels)]
                         / np.sum(CLASS_SHARES[:len(labels)]))
    frame = {"post_id": [f"gen-{i}" for i in range(posts)],
             "label": [labels[c] for c in classes]}
    for modality in MODALITIES:
        offsets = rng.normal(0, 1, (len(labels), dims[modality]))
        vectors = offsets[classes] * 0.2 + rng.normal(0, 1, (posts, dims[modality]))
        missing = rng.random(posts) < missing_share
        frame[modality] = [None if gone else v.round(5).tolist()
                           for v, gone in zip(vectors, missing)]
    return pd.DataFrame(frame)


def _present(value: Any) -> Any:
    """Parquet gives numpy arrays, CSV lists; absent is None or NaN."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return list(value)


def table_dims(table: pd.DataFrame) -> dict[str, int]:
    """Each modality's embedding size, from the first row that has one."""
    dims = {}
    for modality in MODALITIES:
        present = [v for v in table[modality] if _present(v) is not None]
        if not present:
            raise ValueError(f"no {modality} embeddings in the table")
        dims[modality] = len(present[0])
    return dims


def _tensors(table: pd.DataFrame, dims: dict[str, int], labels: list[str]):
    rows = torch.stack([fusion_row({m: _present(r[m]) for m in MODALITIES}, dims)
                        for _, r in table.iterrows()])
    index = {label: i for i, label in enumerate(labels)}
    unknown = set(table["label"]) - set(index)
    if unknown:
        raise ValueError(f"labels not in {labels}: {sorted(unknown)}")
    return rows, torch.tensor([index[label] for label in table["label"]])


def train(table: pd.DataFrame, dims: dict[str, int], options: TrainingOptions = TrainingOptions(),
          labels: list[str] = list(DEFAULT_LABELS)) -> tuple[FusionHead, dict[str, Any]]:
    """Fit the head; returns it and a report measured on the validation split."""
    from sklearn.model_selection import train_test_split

    rows, targets = _tensors(table, dims, labels)
    train_index, valid_index = train_test_split(
        np.arange(len(targets)), test_size=options.validation_share, stratify=targets.numpy(),
        random_state=options.seed)
    counts = torch.bincount(targets[train_index], minlength=len(labels)).clamp(min=1)
    weights = counts.sum() / (len(labels) * counts.float())
    torch.manual_seed(options.seed)
    head = FusionHead(dims, labels, hidden=options.hidden)
    optimizer = torch.optim.AdamW(head.parameters(), lr=options.learning_rate, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    best_f1, best_state = -1.0, None
    for _ in tqdm(range(options.epochs), desc="training the fusion head", unit="epoch"):
        head.train()
        for batch in torch.randperm(len(train_index)).split(options.batch_size):
            chosen = train_index[batch.numpy()]
            optimizer.zero_grad()
            loss_fn(head.logits(rows[chosen]), targets[chosen]).backward()
            optimizer.step()
        macro = measure(head, rows[valid_index], targets[valid_index], labels)["macro_f1"]
        if macro > best_f1:
            best_f1, best_state = macro, {k: v.clone() for k, v in head.state_dict().items()}
    head.load_state_dict(best_state)
    report = {"train_posts": len(train_index), "validation_posts": len(valid_index),
              "dims": dims, "labels": labels,
              **measure(head, rows[valid_index], targets[valid_index], labels)}
    return head, report


def measure(head: FusionHead, rows: torch.Tensor, targets: torch.Tensor,
            labels: list[str]) -> dict[str, Any]:
    """Macro-F1, accuracy, per-class precision and recall, and the confusion matrix of
    ``head`` on ``rows``."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    head.eval()
    with torch.no_grad():
        predicted = head.logits(rows).argmax(dim=1).numpy()
    truth = targets.numpy()
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=range(len(labels)), zero_division=0)
    shares = np.bincount(truth, minlength=len(labels)) / len(truth)
    return {
        "posts": len(truth),
        "macro_f1": float(f1_score(truth, predicted, labels=range(len(labels)),
                                   average="macro", zero_division=0)),
        "accuracy": float(np.mean(truth == predicted)),
        # A guesser that draws labels at the class frequencies gets this macro-F1.
        "chance_macro_f1": float(np.mean(shares)),
        "per_class": {label: {"precision": float(p), "recall": float(r), "f1": float(f),
                              "support": int(n)}
                      for label, p, r, f, n in zip(labels, precision, recall, f1, support)},
        "confusion": confusion_matrix(truth, predicted, labels=range(len(labels))).tolist(),
    }


def evaluate(head: FusionHead, table: pd.DataFrame, dims: dict[str, int]) -> dict[str, Any]:
    """:func:`measure` on another table: posts the head was neither trained nor stopped on
    (posts from other templates, say)."""
    rows, targets = _tensors(table, dims, head.labels())
    return measure(head, rows, targets, head.labels())


def summary_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: per-class figures on the validation split and, where the
    report has them, on posts of other templates side by side."""
    sets = [("validation", report)] + ([("other templates", report["other"])]
                                       if "other" in report else [])
    lines = []
    for name, figures in sets:
        lines.append(f"{name.capitalize()}: {figures.get('posts', report['validation_posts']):,}"
                     f" posts. Macro-F1 **{figures['macro_f1']:.3f}**, accuracy "
                     f"{figures.get('accuracy', float('nan')):.3f} (chance macro-F1 "
                     f"{figures['chance_macro_f1']:.3f}).")
    header = " | ".join(f"{name} precision | {name} recall" for name, _ in sets)
    lines += ["", f"| class | {header} | support |",
              "|---|" + "---|" * (2 * len(sets)) + "---|"]
    for label in report["per_class"]:
        cells = " | ".join(f"{f['per_class'][label]['precision']:.3f} | "
                           f"{f['per_class'][label]['recall']:.3f}" for _, f in sets)
        support = " / ".join(str(f["per_class"][label]["support"]) for _, f in sets)
        lines.append(f"| {label} | {cells} | {support} |")
    return "\n".join(lines) + "\n"


def plot_confusion(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.array(report["confusion"])
    figure, axes = plt.subplots(figsize=(6, 5))
    axes.imshow(matrix, cmap="Blues")
    axes.set(xticks=range(len(report["labels"])), yticks=range(len(report["labels"])),
             xticklabels=report["labels"], yticklabels=report["labels"],
             xlabel="predicted", ylabel="true", title="VRT fusion head (validation)")
    plt.setp(axes.get_xticklabels(), rotation=45, ha="right")
    for (i, j), value in np.ndenumerate(matrix):
        axes.text(j, i, str(value), ha="center", va="center", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_outputs(head: FusionHead, report: dict[str, Any], out_dir: Path) -> list[Path]:
    """fusion.pt (the checkpoint the manifest names), report.json/.md, confusion.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    head.save(out_dir / "fusion.pt")
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    (out_dir / "report.md").write_text("# VRT fusion head\n\n" + summary_markdown(report)
                                       + "\n![confusion matrix](confusion.png)\n")
    plot_confusion(report, out_dir / "confusion.png")
    return [out_dir / n for n in ("fusion.pt", "report.json", "report.md", "confusion.png")]
