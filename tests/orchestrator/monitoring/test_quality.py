"""Quality from moderators' decisions: the window's figures against a brute-force oracle."""

import random

import pytest

from orchestrator.errors import BadMessage, InvalidField
from orchestrator.messages import Envelope, parse_decision
from orchestrator.monitoring import LabelledScore, QualityWindow


def stream(count: int, seed: int) -> list[tuple[str, LabelledScore]]:
    """Decisions whose scores lean towards the truth, thresholds varying by version."""
    rng = random.Random(seed)
    items = []
    for index in range(count):
        positive = rng.random() < 0.3
        score = min(1.0, max(0.0, rng.gauss(0.7 if positive else 0.35, 0.2)))
        items.append((f"clip-{index}", LabelledScore(round(score, 4), rng.choice([0.5, 0.6]),
                                                positive)))
    return items


def oracle_rates(items: list[LabelledScore]) -> tuple[float, float]:
    flagged = [i for i in items if i.score >= i.threshold]
    return (sum(i.positive for i in flagged) / len(flagged),
            sum(i.positive for i in flagged) / sum(i.positive for i in items))


def oracle_threshold(items: list[LabelledScore], target: float) -> float:
    """The highest candidate threshold (every score tried) whose recall reaches ``target``."""
    positives = sum(i.positive for i in items)
    return max(t for t in {i.score for i in items}
               if sum(i.positive and i.score >= t for i in items) / positives >= target)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rates_and_the_proposal_match_a_brute_force_oracle(seed):
    items = stream(800, seed)
    window = QualityWindow(size=1000)
    for item_id, labelled in items:
        window.add(item_id, labelled)
    labelled = [labelled for _, labelled in items]
    assert window.rates() == pytest.approx(oracle_rates(labelled))
    proposal = window.proposal(0.95)
    expected = oracle_threshold(labelled, 0.95)
    assert proposal.threshold == expected
    flagged = [i for i in labelled if i.score >= expected]
    assert proposal.precision == pytest.approx(sum(i.positive for i in flagged) / len(flagged))
    assert proposal.recall >= 0.95 and proposal.decisions == 800


def test_a_redelivered_decision_replaces_its_copy_and_old_ones_leave_the_window():
    window = QualityWindow(size=3)
    window.add("a", LabelledScore(0.9, 0.5, True))
    window.add("a", LabelledScore(0.9, 0.5, True))  # redelivered
    assert len(window) == 1 and window.rates() == (1.0, 1.0)
    for item_id, score in (("b", 0.2), ("c", 0.8), ("d", 0.7)):
        window.add(item_id, LabelledScore(score, 0.5, False))
    assert len(window) == 3  # "a" left
    assert window.rates() == (0.0, None)  # two false positives, no positive left
    assert window.proposal(0.95) is None


def decision(value: bytes) -> Envelope:
    return Envelope("review.decisions", 0, 1, b"k", value)


def test_a_decision_parses_and_a_bad_one_is_refused_with_a_reason():
    parsed = parse_decision(decision(b'{"item_id": "clip-1", "kind": "clip", "moderator_id": '
                                     b'"m7", "decision": "discard", '
                                     b'"decided_at": "2026-11-29T10:00:00Z"}'))
    assert (parsed.item_id, parsed.kind, parsed.positive, parsed.moderator_id) == \
        ("clip-1", "clip", True, "m7")
    for bad in (b'{"item_id": "x", "kind": "stream", "decision": "keep"}',
                b'{"item_id": "x", "kind": "clip", "decision": "maybe"}',
                b'{"item_id": "x", "kind": "clip", "decision": "keep", "moderator_id": "m", '
                b'"decided_at": "soon"}'):
        with pytest.raises(InvalidField):
            parse_decision(decision(bad))
    for missing in (b'{"kind": "clip", "decision": "keep", "moderator_id": "m"}',
                    # Without its own time a decision would be the newest, whatever it says.
                    b'{"item_id": "x", "kind": "clip", "decision": "keep", "moderator_id": "m"}',
                    b'{"item_id": "x", "kind": "clip", "decision": "keep", '
                    b'"decided_at": "2026-11-29T10:00:00Z"}'):
        with pytest.raises(BadMessage) as caught:
            parse_decision(decision(missing))
        assert caught.value.reason == "missing_field"
