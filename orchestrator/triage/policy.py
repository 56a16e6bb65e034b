"""The calibrated min-view triage policy, as the daemon applies it.

`vigil minview calibrate` writes the policy as portable JSON (``policy.json``): per views net
a risk threshold for each method (``score``: the first-line score alone; ``tree``: a
gradient-boosted tree ensemble over the score and the user's 6-month history), and the
tree ensemble itself as plain arrays. Evaluating it needs neither scikit-learn nor a
pickle, so the daemon loads no model code and no file can run code when it is loaded.

Format (``"format": "vigil-triage-policy/1"``)::

    {"target_recall": 0.95, "nets": [1000, 2000],
     "features": ["score", "user_posts_6m", "user_discards_6m"],
     "thresholds": {"score": {"1000": 0.31, "2000": null}, "tree": {...}},   null: never
     "tree": {"baseline": -2.1, "trees": [{"feature": [...], "threshold": [...],
              "left": [...], "right": [...], "value": [...], "leaf": [...],
              "missing_left": [...]}, ...]}}

A tree row goes left when its feature is at most the node's threshold (or missing and
``missing_left``); the risk is the logistic of ``baseline`` plus the leaves reached.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError

FORMAT = "vigil-triage-policy/1"
METHODS = ("score", "tree")
# The daemon's features, in the order it passes them to :meth:`TriagePolicy.risk`.
FEATURES = ("score", "user_posts_6m", "user_discards_6m")


@dataclass(frozen=True)
class Decision:
    enqueue: bool
    risk: float
    reason: str


@dataclass(frozen=True)
class Tree:
    """One regression tree as parallel arrays indexed by node."""

    feature: Sequence[int]
    threshold: Sequence[float]
    left: Sequence[int]
    right: Sequence[int]
    value: Sequence[float]
    leaf: Sequence[bool]
    missing_left: Sequence[bool]

    def leaf_value(self, row: Sequence[float]) -> float:
        node = 0
        while not self.leaf[node]:
            x = row[self.feature[node]]
            go_left = self.missing_left[node] if math.isnan(x) else x <= self.threshold[node]
            node = self.left[node] if go_left else self.right[node]
        return self.value[node]


@dataclass(frozen=True)
class BoostedTrees:
    """A binary gradient-boosted ensemble: P(positive) = logistic(baseline + Σ leaves)."""

    baseline: float
    trees: Sequence[Tree]

    def probability(self, row: Sequence[float]) -> float:
        raw = self.baseline + sum(tree.leaf_value(row) for tree in self.trees)
        return 1.0 / (1.0 + math.exp(-raw)) if raw > -700 else 0.0


@dataclass(frozen=True)
class TriagePolicy:
    """Thresholds per method and net, plus the tree ensemble the ``tree`` method uses."""

    target_recall: float
    nets: tuple[int, ...]
    features: tuple[str, ...]
    thresholds: Mapping[str, Mapping[int, float]]  # method -> net -> threshold (inf: never)
    tree: BoostedTrees

    @classmethod
    def load(cls, path: Path | str) -> TriagePolicy:
        """Read ``policy.json``; raises :class:`ConfigError` naming what is wrong."""
        try:
            document = json.loads(Path(path).read_text())
            if document.get("format") != FORMAT:
                raise ValueError(f"format {document.get('format')!r}, expected {FORMAT!r}")
            return cls.from_document(document)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"cannot read the triage policy {path}: {exc}; write one with "
                              "`vigil minview calibrate`") from exc

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> TriagePolicy:
        thresholds = {method: {int(net): math.inf if value is None else float(value)
                               for net, value in by_net.items()}
                      for method, by_net in document["thresholds"].items()}
        if tuple(document["features"]) != FEATURES:
            raise ValueError(f"features {document['features']}, expected {list(FEATURES)}")
        tree = document["tree"]
        return cls(float(document["target_recall"]), tuple(int(n) for n in document["nets"]),
                   tuple(document["features"]), thresholds,
                   BoostedTrees(float(tree["baseline"]), [Tree(**t) for t in tree["trees"]]))

    def risk(self, method: str, score: float, posts: int, discards: int) -> float:
        """The risk of one post under ``method``: its score, or the tree's probability."""
        if method == "score":
            return score
        if method == "tree":
            return self.tree.probability((score, float(posts), float(discards)))
        raise ValueError(f"unknown triage method {method!r}; expected one of {METHODS}")

    def threshold(self, method: str, net: int) -> float:
        """Raises :class:`ConfigError` when the policy was not calibrated for ``net``."""
        try:
            return self.thresholds[method][net]
        except KeyError:
            raise ConfigError(f"policy has no {method!r} threshold for net {net}; calibrated "
                              f"nets: {list(self.nets)}") from None

    def decide(self, method: str, net: int, risk: float) -> Decision:
        """Review at ``net`` when ``risk`` reaches the net's threshold."""
        threshold = self.threshold(method, net)
        enqueue = risk >= threshold
        limit = "never" if math.isinf(threshold) else f"{threshold:.4f}"
        relation = ">=" if enqueue else "<"
        return Decision(enqueue, risk, f"{method} risk {risk:.4f} {relation} {limit} at net {net}")
