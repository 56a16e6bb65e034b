"""Quality figures that hold for what moderators never see: an audit sample, weighted.

Moderators decide what was flagged (or reached a min-view net), so a miss that was never
flagged never gets a decision, and recall from decisions alone counts only the misses that
happened to be reviewed: an upper bound that can sit far above the truth. So every clip
scored at or over its threshold goes to review (inclusion probability 1), and of the others
a share ``quality.audit_rate`` is drawn by a hash keyed with ``quality.audit_key``
(:class:`AuditSampler`: nobody who chooses ids can steer it), each recorded in
``review_samples`` with its inclusion probability. Moderators see audit items like any other.

The estimate stratifies by that draw. Among the flagged clips decided so far, a share
``p`` was discarded; among the audited ones, a share ``q``. The flagged stratum holds ``N``
clips, the unflagged one an estimated ``W`` (each audited clip weighs 1 / its inclusion
probability), so

    recall = p N / (p N + q W),    precision = p

Each share has a Wilson interval at ``1 - (1 - confidence) / 2`` (so both hold together at
``confidence``, by Bonferroni), and recall's bounds come from their extremes (it rises with
``p`` and falls with ``q``). The interval narrows with the audited decisions: at q near 2%,
about 750 of them make q's own interval ±1 point wide.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from orchestrator.clock import iso_from_epoch
from orchestrator.config import QualityConfig
from orchestrator.db import Store, upsert
from orchestrator.metrics import Metrics, labelled
from orchestrator.monitoring.statistics import share_of, wilson, z_of

R = TypeVar("R")
Key = tuple[str, str, str]  # model, version, routed language
CONFIDENCE = 0.95
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reviewable:
    """A scored item as the audit sees it."""

    item_id: str
    kind: str
    model: str
    version: str
    language: str  # routed
    score: float
    threshold: float
    scored_at: str
    media_url: str | None = None  # for the review tool; None for inline media


class AuditSampler:
    """Which scored items go to review, and with what probability."""

    def __init__(self, rate: float, key: str) -> None:
        self.rate = rate
        if rate and not key:
            logger.warning("quality.audit_key is not set: the audit sample is drawn with a "
                           "key of this process, so a clip redelivered after a restart may "
                           "be drawn again (set VIGIL_QUALITY_AUDIT_KEY from a Secret)")
        self.key = key or secrets.token_hex(16)

    def inclusion(self, item: Reviewable) -> float | None:
        """1 for a flagged item, ``rate`` for an unflagged one the keyed draw picks, None
        for the rest."""
        if item.score >= item.threshold:
            return 1.0
        if self.rate > 0 and share_of(f"audit/{item.kind}/{item.item_id}", self.key) < self.rate:
            return self.rate
        return None


class ReviewSampleSink(Generic[R]):
    """Records the sampled results in ``review_samples`` (first draw wins: idempotent)."""

    def __init__(self, store: Store, sampler: AuditSampler,
                 reviewable: Callable[[R], Reviewable]) -> None:
        self.store = store
        self.sampler = sampler
        self.reviewable = reviewable

    async def write(self, results: Sequence[R]) -> None:
        rows = []
        for result in results:
            item = self.reviewable(result)
            probability = self.sampler.inclusion(item)
            if probability is not None:
                rows.append({"item_id": item.item_id, "kind": item.kind, "model": item.model,
                             "version": item.version, "language": item.language,
                             "score": item.score, "threshold": item.threshold,
                             "flagged": int(item.score >= item.threshold),
                             "inclusion_probability": probability,
                             "sampled_at": item.scored_at, "media_url": item.media_url})
        if rows:
            await upsert(self.store, "review_samples", rows, keep_existing=True)


@dataclass(frozen=True, slots=True)
class Stratum:
    """One stratum's sampled items, their weight (sum of 1 / inclusion probability), and
    the decided and discarded among them."""

    sampled: int
    weight: float
    decided: int
    discarded: int


EMPTY = Stratum(0, 0.0, 0, 0)


@dataclass(frozen=True, slots=True)
class Estimate:
    recall: float
    recall_lower: float
    recall_upper: float
    precision: float | None  # None while nothing was flagged
    precision_lower: float | None
    precision_upper: float | None
    naive_recall: float  # discarded flagged / all discarded decided: what decisions alone say
    audited_decided: int


def estimate(flagged: Stratum, audited: Stratum, confidence: float) -> Estimate | None:
    """Recall and precision with their intervals; None until each stratum that has items
    has decisions, and something decided was discarded (recall is undefined before)."""
    if any(s.sampled and not s.decided for s in (flagged, audited)) or \
            flagged.discarded + audited.discarded == 0:
        return None
    z = z_of(1 - (1 - confidence) / 2)

    def share(stratum: Stratum) -> tuple[float, float, float]:
        if not stratum.decided:  # an empty stratum: its weight is 0, its share moot
            return 0.0, 0.0, 0.0
        return (stratum.discarded / stratum.decided,
                *wilson(stratum.discarded, stratum.decided, z))

    (p, p_low, p_high), (q, q_low, q_high) = share(flagged), share(audited)

    def recall(p_: float, q_: float) -> float:
        caught = p_ * flagged.weight
        return caught / (caught + q_ * audited.weight) if caught else 0.0

    precision = (p, p_low, p_high) if flagged.decided else (None, None, None)
    return Estimate(recall(p, q), recall(p_low, q_high), recall(p_high, q_low), *precision,
                    flagged.discarded / (flagged.discarded + audited.discarded),
                    audited.decided)


STRATA_SQL = (
    "SELECT s.model, s.version, s.language, s.flagged, COUNT(*), "
    "SUM(1.0 / s.inclusion_probability), COUNT(d.item_id), "
    "SUM(CASE WHEN d.decision = 'discard' THEN 1 ELSE 0 END) "
    "FROM review_samples s LEFT JOIN review_decisions d ON d.item_id = s.item_id "
    "AND d.kind = s.kind AND d.decided_at >= s.sampled_at "
    "WHERE s.sampled_at >= ? GROUP BY s.model, s.version, s.language, s.flagged")


async def strata(store: Store, since: str) -> dict[Key, dict[bool, Stratum]]:
    """The flagged (True) and audited (False) strata per model, version and language, of
    the samples since ``since`` (ISO 8601), with the newest decision on each."""
    found: dict[Key, dict[bool, Stratum]] = {}
    for model, version, language, flagged, sampled, weight, decided, discarded in \
            await store.fetch_all(STRATA_SQL, [since]):
        found.setdefault((model, version, language), {})[bool(flagged)] = Stratum(
            int(sampled), float(weight), int(decided), int(discarded or 0))
    return found


class AuditBook:
    """The quality daemon's estimates from the audit sample, re-read from the database (so
    a restart loses nothing): gauges per model, version and language, and the latest
    estimates for the threshold proposals."""

    def __init__(self, store: Store, config: QualityConfig, metrics: Metrics) -> None:
        self.store = store
        self.config = config
        self.latest: dict[Key, Estimate] = {}
        self._recall = labelled(metrics.quality_recall_estimate)
        self._precision = labelled(metrics.quality_precision_estimate)
        self._naive = labelled(metrics.quality_recall_naive)
        self._audited = labelled(metrics.quality_audited)

    async def refresh(self) -> None:
        since = iso_from_epoch(time.time() - self.config.audit_days * 86400)
        for key, both in (await strata(self.store, since)).items():
            audited = both.get(False, EMPTY)
            self._audited(*key).set(audited.decided)
            found = estimate(both.get(True, EMPTY), audited, CONFIDENCE)
            if found is None:
                continue
            self.latest[key] = found
            for bound, recall, precision in (
                    ("estimate", found.recall, found.precision),
                    ("lower", found.recall_lower, found.precision_lower),
                    ("upper", found.recall_upper, found.precision_upper)):
                self._recall(*key, bound).set(recall)
                if precision is not None:
                    self._precision(*key, bound).set(precision)
            self._naive(*key).set(found.naive_recall)
