"""Score drift: is a model version scoring today's traffic as it scored its reference?

Every score is observed into ``vigil_score`` (fixed buckets on [0, 1]). Where the catalogue
holds the version's reference distribution (saved when it was built or calibrated: bin
edges and the fraction of reference scores in each bin), ``vigil_score_psi`` is the
Population Stability Index of the last ``drift.window`` scores against it:

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

with empty bins floored at :data:`FLOOR`. By the usual reading, under 0.1 is stable, 0.1 to
0.25 a shift worth a look, over 0.25 a shift to act on. PSI measures how far, not how sure:
on a few hundred scores it moves by chance, so beside it ``vigil_score_drift_p_value`` is a
one-sample KS test of the window against the reference (at the bin edges), and the alert
needs both: PSI over 0.25 and p under 0.01.

The ``language`` label is the routed language: the clip's language where the model serves it
by name, else ``*`` (the fallback model). A clip's own language string would let anyone
mint label values.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.catalogue import ModelEntry
from orchestrator.config import DriftConfig
from orchestrator.metrics import Metrics, labelled
from orchestrator.monitoring.statistics import ks_against

FLOOR = 1e-4  # an empty bin's fraction: PSI is infinite otherwise
EVERY = 10  # recompute PSI every this many scores: one score barely moves it


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """The Population Stability Index of ``actual`` bin fractions against ``expected``."""
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} expected bins, {len(actual)} actual")
    total = 0.0
    for e, a in zip(expected, actual):
        e, a = max(e, FLOOR), max(a, FLOOR)
        total += (a - e) * math.log(a / e)
    return total


@dataclass(frozen=True)
class Reference:
    """A reference score distribution: upper bin edges (the last is 1.0) and fractions."""

    edges: tuple[float, ...]
    fractions: tuple[float, ...]

    @classmethod
    def from_catalogue(cls, document: Mapping[str, Any] | None) -> Reference | None:
        """The catalogue's ``score_reference``, or None when absent or malformed."""
        try:
            edges = tuple(float(e) for e in document["edges"])
            fractions = tuple(float(f) for f in document["fractions"])
        except (TypeError, KeyError, ValueError):
            return None
        if not edges or len(edges) != len(fractions) or list(edges) != sorted(edges):
            return None
        return cls(edges, fractions)

    def bin(self, score: float) -> int:
        """The bin of ``score``: the first whose upper edge is at or above it."""
        return min(bisect.bisect_left(self.edges, score), len(self.edges) - 1)


class Window:
    """The bins of the last ``size`` scores, counted as they come and go."""

    def __init__(self, reference: Reference, size: int) -> None:
        self.reference = reference
        self.bins: deque[int] = deque(maxlen=size)
        self.counts = [0] * len(reference.edges)
        self.added = 0

    def add(self, score: float) -> None:
        if len(self.bins) == self.bins.maxlen:
            self.counts[self.bins[0]] -= 1
        index = self.reference.bin(score)
        self.bins.append(index)
        self.counts[index] += 1
        self.added += 1

    def psi(self) -> float:
        seen = len(self.bins)
        return psi(self.reference.fractions, [count / seen for count in self.counts])

    def p_value(self) -> float:
        """How likely a window this far from the reference is by chance alone (KS)."""
        return ks_against(self.reference.fractions, self.counts)[1]


class ScoreDrift:
    """``vigil_score`` for every score a pipeline writes, ``vigil_score_psi`` per model
    version and language whose catalogue entry has a reference."""

    def __init__(self, metrics: Metrics, pipeline: str, config: DriftConfig) -> None:
        self.pipeline = pipeline
        self.config = config
        self._score = labelled(metrics.score)
        self._psi = labelled(metrics.score_psi)
        self._p_value = labelled(metrics.score_drift_p_value)
        self._windows: dict[tuple[str, str, str], Window | None] = {}

    def observe(self, model: ModelEntry, language: str, score: float) -> None:
        language = model.metric_language(language)
        self._score(self.pipeline, model.name, model.version, language).observe(score)
        key = (model.name, model.version, language)
        if key not in self._windows:
            reference = Reference.from_catalogue(model.score_reference)
            self._windows[key] = reference and Window(reference, self.config.window)
        window = self._windows[key]
        if window is None:
            return
        window.add(score)
        if len(window.bins) >= self.config.min_scores and window.added % EVERY == 0:
            self._psi(*key).set(window.psi())
            self._p_value(*key).set(window.p_value())
