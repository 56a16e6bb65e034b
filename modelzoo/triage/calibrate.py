"""Calibrate the triage policy on a labelled history and report what it saves.

Both methods are calibrated the same way: on the calibration split, the highest threshold
whose recall on NSFW posts is at least the target, read directly off the precision-recall
curve. The tree's calibration risks are out-of-fold predictions (5-fold), so the threshold is
not chosen on scores the model was fitted to; the final tree is then fitted on the whole
calibration split. Everything reported is measured on the held-out split.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelzoo.triage.data import DISCARD
from modelzoo.triage.policy import FEATURES, METHODS, TriagePolicy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalibrationOptions:
    target_recall: float = 0.95
    second_net_recall: float = 0.8  # of the NSFW posts a net sees that earlier nets skipped
    nets: tuple[int, ...] = (1000, 2000)
    test_size: float = 0.5
    seed: int = 0


def threshold_at_recall(labels: np.ndarray, risk: np.ndarray, target: float) -> float:
    """The highest threshold with recall >= ``target``; +inf when there is nothing to catch."""
    from sklearn.metrics import precision_recall_curve

    if not labels.any():
        return math.inf
    _, recall, thresholds = precision_recall_curve(labels, risk)
    # recall[i] is the recall of "risk >= thresholds[i]"; the last point (recall 0) has none.
    return float(thresholds[recall[:-1] >= target].max())


def _thresholds(labels: np.ndarray, risk: np.ndarray, views: np.ndarray,
                options: CalibrationOptions) -> dict[int, float]:
    thresholds: dict[int, float] = {}
    unreviewed = np.ones(len(labels), dtype=bool)
    for index, net in enumerate(options.nets):
        seen = unreviewed & (views >= net)
        target = options.target_recall if index == 0 else options.second_net_recall
        thresholds[net] = threshold_at_recall(labels[seen], risk[seen], target)
        unreviewed &= ~(seen & (risk >= thresholds[net]))
    return thresholds


def evaluate(labels: np.ndarray, risk: np.ndarray, views: np.ndarray,
             thresholds: dict[int, float]) -> dict[str, Any]:
    """What the thresholds do on a labelled split: per net and combined."""
    posts, positives = len(labels), int(labels.sum())
    unreviewed = np.ones(posts, dtype=bool)
    caught_total, reviews_total, nets = 0, 0, []
    for net, threshold in thresholds.items():
        seen = unreviewed & (views >= net)
        reviewed = seen & (risk >= threshold)
        missed_before = int((labels & seen).sum())
        caught = int((labels & reviewed).sum())
        nets.append({
            "net": net, "threshold": threshold, "posts_seen": int(seen.sum()),
            "reviews": int(reviewed.sum()), "review_share": float(reviewed.sum() / posts),
            "nsfw_seen": missed_before, "nsfw_caught": caught,
            "recall_of_seen": caught / missed_before if missed_before else math.nan,
            "precision": caught / reviewed.sum() if reviewed.any() else math.nan,
        })
        unreviewed &= ~reviewed
        caught_total += caught
        reviews_total += int(reviewed.sum())
    return {
        "posts": posts, "nsfw": positives, "nets": nets,
        "recall_first_net": nets[0]["nsfw_caught"] / positives if positives else math.nan,
        "reviews_avoided_first_net": 1 - nets[0]["reviews"] / posts,
        "combined_recall": caught_total / positives if positives else math.nan,
        "reviews_total": reviews_total,
        # Against the practice this replaces: review every post once, at the first net.
        "reviews_avoided_total": 1 - reviews_total / posts,
    }


def _tree_risks(features: np.ndarray, labels: np.ndarray, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    def make() -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.08,
                                              max_leaf_nodes=31, random_state=seed)

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    out_of_fold = cross_val_predict(make(), features, labels, cv=folds,
                                    method="predict_proba")[:, 1]
    return make().fit(features, labels), out_of_fold


def calibrate(history: pd.DataFrame, options: CalibrationOptions = CalibrationOptions()
              ) -> tuple[TriagePolicy, dict[str, Any]]:
    """Fit and calibrate both methods; returns the policy and the held-out report."""
    from sklearn.model_selection import train_test_split

    labels = (history["decision"] == DISCARD).to_numpy()
    calibration, held_out = train_test_split(
        np.arange(len(history)), test_size=options.test_size, stratify=labels,
        random_state=options.seed)
    features = history[list(FEATURES)].to_numpy(dtype=float)
    views = history["views"].to_numpy()

    logger.info("fitting the tree (5 folds + final) on %d posts", len(calibration))
    tree, out_of_fold = _tree_risks(features[calibration], labels[calibration], options.seed)
    calibration_risk = {"score": features[calibration, 0], "tree": out_of_fold}
    held_out_risk = {"score": features[held_out, 0],
                     "tree": tree.predict_proba(features[held_out])[:, 1]}

    thresholds, results = {}, {}
    for method in METHODS:
        thresholds[method] = _thresholds(labels[calibration], calibration_risk[method],
                                         views[calibration], options)
        results[method] = evaluate(labels[held_out], held_out_risk[method], views[held_out],
                                   thresholds[method])
    report = {"options": asdict(options), "calibration_posts": len(calibration),
              "held_out_posts": len(held_out), "methods": results}
    policy = TriagePolicy(options.target_recall, options.nets, thresholds, tree,
                          metadata={"report": report})
    curves = {m: (labels[held_out], held_out_risk[m]) for m in METHODS}
    return policy, report | {"_curves": curves}


def _percent(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def summary_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table: score-only vs tree, on the held-out split."""
    methods = report["methods"]
    target = report["options"]["target_recall"]
    rows = [("threshold at the first net", lambda r: f"{r['nets'][0]['threshold']:.4f}"),
            (f"recall at the first net (target {_percent(target)})",
             lambda r: _percent(r["recall_first_net"])),
            ("precision at the first net", lambda r: _percent(r["nets"][0]["precision"])),
            ("reviews at the first net", lambda r: f"{r['nets'][0]['reviews']:,}"),
            ("reviews avoided at the first net",
             lambda r: _percent(r["reviews_avoided_first_net"]))]
    for index in range(1, len(report["options"]["nets"])):
        rows += [
            (f"net {report['options']['nets'][index]}: extra reviews",
             lambda r, i=index: f"{r['nets'][i]['reviews']:,} ({_percent(r['nets'][i]['review_share'])})"),
            (f"net {report['options']['nets'][index]}: catches of the missed NSFW it sees",
             lambda r, i=index: f"{r['nets'][i]['nsfw_caught']} of {r['nets'][i]['nsfw_seen']}"),
        ]
    rows += [("combined recall", lambda r: _percent(r["combined_recall"])),
             ("reviews avoided in total", lambda r: _percent(r["reviews_avoided_total"]))]
    lines = [f"Held-out split: {report['held_out_posts']:,} posts, "
             f"{methods['score']['nsfw']:,} NSFW. Baseline: review every post at the first net.",
             "", "| | score only | tree (score + user history) |", "|---|---|---|"]
    lines += [f"| {name} | {cell(methods['score'])} | {cell(methods['tree'])} |"
              for name, cell in rows]
    return "\n".join(lines) + "\n"


def plot_curves(report: dict[str, Any], path: Path) -> None:
    """Precision-recall curves on the held-out split, with the first net's chosen points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    figure, axes = plt.subplots(figsize=(6, 4.5))
    for method, (labels, risk) in report["_curves"].items():
        precision, recall, _ = precision_recall_curve(labels, risk)
        axes.plot(recall, precision, label=f"{method}")
        chosen = report["methods"][method]["nets"][0]
        axes.scatter([report["methods"][method]["recall_first_net"]], [chosen["precision"]],
                     marker="o", zorder=3)
    axes.axvline(report["options"]["target_recall"], linestyle="--", color="grey",
                 label="target recall")
    axes.set(xlabel="recall (NSFW)", ylabel="precision", title="Triage at the first net")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_outputs(policy: TriagePolicy, report: dict[str, Any], out_dir: Path) -> list[Path]:
    """policy.json, report.json, report.md and pr_curve.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    policy.save(out_dir / "policy.json")
    public = {k: v for k, v in report.items() if not k.startswith("_")}
    (out_dir / "report.json").write_text(json.dumps(public, indent=2, default=float))
    markdown = "# Min-view triage calibration\n\n" + summary_markdown(report)
    markdown += "\n![precision-recall](pr_curve.png)\n"
    (out_dir / "report.md").write_text(markdown)
    plot_curves(report, out_dir / "pr_curve.png")
    return [out_dir / name for name in ("policy.json", "report.json", "report.md",
                                        "pr_curve.png")]
