"""The calibrated triage policy: per views net, a risk threshold for each method.

Two methods share one artifact: ``score`` (risk = the first-line score) and ``tree`` (risk =
a gradient-boosted tree over the score and the user's 6-month history). A post is sent to
review at a net when its risk reaches that net's threshold; later nets only see posts the
earlier nets skipped. Imports scikit-learn and joblib, never torch: the daemon loads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = ("score", "user_posts_6m", "user_discards_6m")
METHODS = ("score", "tree")


@dataclass(frozen=True)
class Decision:
    enqueue: bool
    risk: float
    reason: str


@dataclass
class TriagePolicy:
    """Thresholds per method and net, plus the tree model the ``tree`` method scores with."""

    target_recall: float
    nets: tuple[int, ...]
    thresholds: dict[str, dict[int, float]]  # method -> net -> threshold
    tree: Any = None  # a fitted scikit-learn classifier with predict_proba
    metadata: dict[str, Any] = field(default_factory=dict)

    def risk(self, method: str, features: np.ndarray) -> np.ndarray:
        """Risk per row of ``features`` (columns as :data:`FEATURES`)."""
        features = np.asarray(features, dtype=float).reshape(-1, len(FEATURES))
        if method == "score":
            return features[:, 0]
        if method == "tree":
            return self.tree.predict_proba(features)[:, 1]
        raise ValueError(f"unknown triage method {method!r}; expected one of {METHODS}")

    def threshold(self, method: str, net: int) -> float:
        try:
            return self.thresholds[method][net]
        except KeyError:
            raise KeyError(f"policy has no {method!r} threshold for net {net}; calibrated nets: "
                           f"{list(self.nets)}") from None

    def decide(self, method: str, net: int, risk: float) -> Decision:
        """Review at ``net`` when ``risk`` reaches the net's threshold."""
        threshold = self.threshold(method, net)
        enqueue = risk >= threshold
        limit = "never" if math.isinf(threshold) else f"{threshold:.4f}"
        relation = ">=" if enqueue else "<"
        return Decision(enqueue, risk, f"{method} risk {risk:.4f} {relation} {limit} at net {net}")

    def save(self, path: Path) -> None:
        import joblib

        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, path)

    @staticmethod
    def load(path: Path | str) -> TriagePolicy:
        """Load a policy written by ``vigil minview calibrate`` (a trusted local file)."""
        import joblib

        policy = joblib.load(path)
        if not isinstance(policy, TriagePolicy):
            raise TypeError(f"{path} holds a {type(policy).__name__}, not a TriagePolicy")
        return policy
