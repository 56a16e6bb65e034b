"""A model version's precision and recall from moderators' decisions, and the threshold a
recall target would need.

Moderators' decisions (``review.decisions``) arrive long after the verdicts; each decided
clip joined to its verdict is one labelled score. A :class:`QualityWindow` holds the last
``size`` of them per model, version and language, keyed by item id, so a redelivered decision
replaces its earlier copy instead of counting twice, in the figures or in ``added``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LabelledScore:
    """A verdict's score and the threshold it was flagged at, with the moderator's label."""

    score: float
    threshold: float
    positive: bool  # the moderator discarded the item


@dataclass(frozen=True, slots=True)
class Proposal:
    """The highest threshold that keeps ``target`` of the positives, and its figures."""

    threshold: float
    precision: float
    recall: float
    decisions: int
    positives: int


class QualityWindow:
    """The last ``size`` labelled scores of one model version and language; ``added``
    counts the items that entered it (a redelivered one is not counted again)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, LabelledScore] = OrderedDict()
        self.added = 0

    def __len__(self) -> int:
        return len(self._items)

    def copy(self) -> QualityWindow:
        """An independent window with the same items and count."""
        twin = QualityWindow(self.size)
        twin._items = self._items.copy()
        twin.added = self.added
        return twin

    def add(self, item_id: str, labelled: LabelledScore) -> bool:
        """Put ``labelled`` in; True when ``item_id`` was not in the window already."""
        new = self._items.pop(item_id, None) is None
        self._items[item_id] = labelled
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        self.added += new
        return new

    def rates(self) -> tuple[float | None, float | None]:
        """(precision, recall) of the verdicts as flagged, each at its own threshold; None
        where nothing was flagged or nothing was positive."""
        items = self._items.values()
        flagged = [item for item in items if item.score >= item.threshold]
        true_positives = sum(item.positive for item in flagged)
        positives = sum(item.positive for item in items)
        return (true_positives / len(flagged) if flagged else None,
                true_positives / positives if positives else None)

    def proposal(self, target_recall: float) -> Proposal | None:
        """The highest threshold whose recall over the window is at least
        ``target_recall``: the ``ceil(target x positives)``-th highest positive score. None
        without positives."""
        positives = sorted((item.score for item in self._items.values() if item.positive),
                           reverse=True)
        if not positives:
            return None
        threshold = positives[max(1, math.ceil(target_recall * len(positives))) - 1]
        flagged = [item for item in self._items.values() if item.score >= threshold]
        caught = sum(item.positive for item in flagged)
        return Proposal(threshold, caught / len(flagged), caught / len(positives),
                        len(self._items), len(positives))
