"""The calibrated triage policy: per views net, a risk threshold for each method.

Two methods share one artifact: ``score`` (risk = the first-line score) and ``tree`` (risk =
a gradient-boosted tree over the score and the user's 6-month history). A post is sent to
review at a net when its risk reaches that net's threshold; later nets only see posts the
earlier nets skipped. Saved as portable JSON (format ``vigil-triage-policy/1``, described in
``orchestrator/triage/policy.py``, which the daemon evaluates without scikit-learn).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "vigil-triage-policy/1"
FEATURES = ("score", "user_posts_6m", "user_discards_6m")
METHODS = ("score", "tree")


@dataclass
class TriagePolicy:
    """Thresholds per method and net, plus the fitted tree model the ``tree`` method uses."""

    target_recall: float
    nets: tuple[int, ...]
    thresholds: dict[str, dict[int, float]]  # method -> net -> threshold (inf: never)
    tree: Any = None  # a fitted scikit-learn HistGradientBoostingClassifier
    metadata: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        """The policy in the portable format: thresholds (``None``: never) and the fitted
        tree ensemble as plain arrays."""
        return {
            "format": FORMAT, "target_recall": self.target_recall, "nets": list(self.nets),
            "features": list(FEATURES),
            "thresholds": {method: {str(net): None if math.isinf(t) else t
                                    for net, t in by_net.items()}
                           for method, by_net in self.thresholds.items()},
            "tree": export_trees(self.tree),
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.document()))


def export_trees(classifier: Any) -> dict[str, Any]:
    """A fitted binary ``HistGradientBoostingClassifier`` (numeric features) as arrays."""
    if getattr(classifier, "n_trees_per_iteration_", 1) != 1:
        raise ValueError("only a binary classifier's trees can be exported")
    trees = []
    for (predictor,) in classifier._predictors:
        nodes = predictor.nodes
        trees.append({"feature": nodes["feature_idx"].tolist(),
                      "threshold": nodes["num_threshold"].tolist(),
                      "left": nodes["left"].tolist(), "right": nodes["right"].tolist(),
                      "value": nodes["value"].tolist(),
                      "leaf": nodes["is_leaf"].astype(bool).tolist(),
                      "missing_left": nodes["missing_go_to_left"].astype(bool).tolist()})
    return {"baseline": float(np.ravel(classifier._baseline_prediction)[0]), "trees": trees}
