"""Calibration of the min-view triage on generated histories with a known ground truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelzoo.triage.calibrate import (CalibrationOptions, calibrate, evaluate,
                                       threshold_at_recall, write_outputs)
from modelzoo.triage.data import COLUMNS, generate_history, read_history
from orchestrator.errors import ConfigError
from orchestrator.triage import TriagePolicy


@pytest.fixture(scope="module")
def calibrated_100k():
    return calibrate(generate_history(100_000, seed=7), CalibrationOptions(target_recall=0.95))


def test_threshold_is_the_highest_with_recall_at_least_the_target():
    labels = np.array([1, 1, 0, 1, 0], dtype=bool)
    risk = np.array([0.9, 0.8, 0.7, 0.3, 0.1])
    assert threshold_at_recall(labels, risk, 0.6) == 0.8  # 2 of 3; 0.9 catches only 1
    assert threshold_at_recall(labels, risk, 1.0) == 0.3
    assert math.isinf(threshold_at_recall(np.zeros(3, dtype=bool), risk[:3], 0.9))


def test_a_later_net_only_sees_posts_the_earlier_net_skipped():
    labels = np.array([1, 1, 1, 0, 0], dtype=bool)
    risk = np.array([0.9, 0.4, 0.2, 0.5, 0.1])
    views = np.array([3000, 3000, 1500, 3000, 3000])
    result = evaluate(labels, risk, views, {1000: 0.8, 2000: 0.3})
    first, second = result["nets"]
    assert (first["reviews"], first["nsfw_caught"]) == (1, 1)
    assert (second["posts_seen"], second["reviews"], second["nsfw_caught"]) == (3, 2, 1)
    assert result["combined_recall"] == pytest.approx(2 / 3)
    assert result["reviews_avoided_total"] == pytest.approx(1 - 3 / 5)


def test_held_out_recall_is_within_one_point_of_the_target(calibrated_100k):
    _, report = calibrated_100k
    for method in ("score", "tree"):
        assert abs(report["methods"][method]["recall_first_net"] - 0.95) <= 0.01, method


def test_the_tree_avoids_more_reviews_than_the_score_threshold(calibrated_100k):
    _, report = calibrated_100k
    score, tree = report["methods"]["score"], report["methods"]["tree"]
    assert tree["reviews_avoided_first_net"] > score["reviews_avoided_first_net"]
    for method in (score, tree):  # the second net only adds recall
        assert method["combined_recall"] > method["recall_first_net"]


def test_outputs_round_trip_and_the_policy_decides_by_its_thresholds(calibrated_100k, tmp_path):
    policy, report = calibrated_100k
    paths = write_outputs(policy, report, tmp_path)
    assert all(p.stat().st_size > 0 for p in paths)
    assert "| reviews avoided at the first net |" in (tmp_path / "report.md").read_text()
    loaded = TriagePolicy.load(tmp_path / "policy.json")
    threshold = loaded.threshold("tree", 1000)
    assert loaded.decide("tree", 1000, threshold).enqueue
    assert not loaded.decide("tree", 1000, threshold * 0.99).enqueue
    assert loaded.risk("tree", 0.9, 40, 20) > loaded.risk("tree", 0.01, 40, 0)
    with pytest.raises(ConfigError, match="no 'tree' threshold for net 5000"):
        loaded.threshold("tree", 5000)


def test_the_portable_policy_scores_exactly_as_the_fitted_trees(calibrated_100k, tmp_path):
    """The daemon evaluates the exported arrays without scikit-learn: the oracle is
    scikit-learn's own predict_proba on the same rows."""
    policy, report = calibrated_100k
    write_outputs(policy, report, tmp_path)
    loaded = TriagePolicy.load(tmp_path / "policy.json")
    rows = generate_history(2_000, seed=11)[["score", "user_posts_6m", "user_discards_6m"]]
    rows = rows.to_numpy(dtype=float)
    expected = policy.tree.predict_proba(rows)[:, 1]
    ours = np.array([loaded.risk("tree", *row) for row in rows])
    assert np.abs(ours - expected).max() < 1e-9
    assert loaded.risk("score", 0.42, 3, 1) == 0.42


def test_a_policy_file_that_is_not_a_policy_is_refused_with_a_reason(tmp_path):
    (tmp_path / "pickle.json").write_bytes(b"\x80\x04\x95 not json")
    (tmp_path / "other.json").write_text('{"format": "something-else/1"}')
    for name in ("pickle.json", "other.json", "missing.json"):
        with pytest.raises(ConfigError, match="cannot read the triage policy"):
            TriagePolicy.load(tmp_path / name)


def test_histories_missing_a_column_are_refused(tmp_path):
    path = tmp_path / "history.csv"
    generate_history(50).drop(columns=["views"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match="missing columns \\['views'\\]"):
        read_history(str(path))
    good = tmp_path / "history.parquet"
    generate_history(50).to_parquet(good)
    assert tuple(read_history(str(good)).columns) == COLUMNS
