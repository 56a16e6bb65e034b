"""Score drift: PSI against the catalogue's reference, over a window of recent scores, and
a KS test that says whether it is chance."""

import math
import random

import pytest
from prometheus_client import CollectorRegistry

from modelzoo.catalogue import score_reference
from orchestrator.catalogue import ModelEntry
from orchestrator.config import DriftConfig
from orchestrator.metrics import Metrics
from orchestrator.monitoring.drift import Reference, ScoreDrift, psi


def test_psi_matches_the_formula_worked_by_hand():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0
    assert psi([1.0, 0.0], [0.0, 1.0]) > 10  # empty bins are floored, not infinite
    with pytest.raises(ValueError):
        psi([0.5, 0.5], [1.0])


@pytest.mark.parametrize("score", [0.0, 0.05, 0.0500001, 0.5, 0.95, 0.99, 1.0])
def test_the_daemon_bins_a_score_where_the_build_did(score):
    built = score_reference([score], "one score")
    reference = Reference.from_catalogue(built)
    assert built["fractions"][reference.bin(score)] == 1.0


@pytest.mark.parametrize("document", [None, {}, {"edges": [0.5, 1.0], "fractions": [1.0]},
                                      {"edges": [1.0, 0.5], "fractions": [0.5, 0.5]},
                                      {"edges": "0.5", "fractions": "1"}])
def test_a_missing_or_malformed_reference_gives_no_psi(document):
    assert Reference.from_catalogue(document) is None


def model(reference: dict | None, languages: tuple[str, ...] = ("hi",)) -> ModelEntry:
    return ModelEntry(name="audio_nsfw_hi", version="2.0", family="audio_nsfw", file="x.mar",
                      languages=languages, labels=("safe", "nsfw"), score_reference=reference)


def scores(alpha: float, beta: float, count: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.betavariate(alpha, beta) for _ in range(count)]


def sample(metrics: Metrics, name: str, labels: dict) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


PSI_LABELS = {"model": "audio_nsfw_hi", "version": "2.0", "language": "hi"}


def drift_after(live: list[float], reference: dict | None, *, languages=("hi",),
                language: str = "hi", window: int = 1000, min_scores: int = 200) -> Metrics:
    metrics = Metrics(CollectorRegistry())
    drift = ScoreDrift(metrics, "audio", DriftConfig(window=window, min_scores=min_scores))
    for score in live:
        drift.observe(model(reference, languages), language, score)
    return metrics


def test_psi_stays_flat_on_the_reference_distribution_and_moves_when_scores_shift():
    reference = score_reference(scores(2, 5, 5000, seed=1), "held-out clips")
    same = drift_after(scores(2, 5, 1000, seed=2), reference)
    shifted = drift_after(scores(5, 2, 1000, seed=3), reference)
    assert sample(same, "vigil_score_psi", PSI_LABELS) < 0.05
    assert sample(shifted, "vigil_score_psi", PSI_LABELS) > 1.0
    assert sample(same, "vigil_score_count", {"pipeline": "audio", **PSI_LABELS}) == 1000


def test_the_drift_p_value_separates_chance_from_a_real_shift():
    reference = score_reference(scores(2, 5, 5000, seed=1), "held-out clips")
    chance = [sample(drift_after(scores(2, 5, 200, seed=seed), reference, min_scores=200),
                     "vigil_score_drift_p_value", PSI_LABELS) for seed in range(10, 30)]
    assert sum(p < 0.01 for p in chance) <= 1  # a true 1% test, erring towards "no drift"
    slight = drift_after(scores(2.4, 5, 1000, seed=5), reference)
    assert sample(slight, "vigil_score_drift_p_value", PSI_LABELS) < 0.01


def test_the_window_forgets_old_scores():
    reference = score_reference(scores(2, 5, 5000, seed=1), "held-out clips")
    recovered = drift_after(scores(5, 2, 500, seed=3) + scores(2, 5, 500, seed=4), reference,
                            window=500)
    assert sample(recovered, "vigil_score_psi", PSI_LABELS) < 0.1


def test_no_psi_before_min_scores_and_none_without_a_reference():
    reference = score_reference(scores(2, 5, 5000, seed=1), "held-out clips")
    assert sample(drift_after(scores(2, 5, 199, seed=2), reference), "vigil_score_psi",
                  PSI_LABELS) is None
    unreferenced = drift_after(scores(2, 5, 300, seed=2), None)
    assert sample(unreferenced, "vigil_score_psi", PSI_LABELS) is None
    assert sample(unreferenced, "vigil_score_count", {"pipeline": "audio", **PSI_LABELS}) == 300


def test_a_language_the_model_serves_only_as_the_fallback_is_labelled_star():
    metrics = drift_after([0.5] * 3, None, languages=("*",), language="zz-made-up")
    labels = {"pipeline": "audio", "model": "audio_nsfw_hi", "version": "2.0", "language": "*"}
    assert sample(metrics, "vigil_score_count", labels) == 3
    assert sample(metrics, "vigil_score_bucket", {**labels, "le": "0.5"}) == 3
