"""The cascade's screen: calibrated against the model it screens for, measured per set,
and traced into the archive unchanged."""

import numpy as np
import pytest
import torch

from handlers.screen import SCREEN_FILE, Screen
from modelzoo import screen


def test_the_threshold_keeps_99_percent_of_the_models_positives_on_every_set():
    rng = np.random.default_rng(0)
    sets = []
    for shift in (0.0, 0.3):
        positives = rng.random(400) < 0.5
        scores = np.clip(rng.normal(0.3 + 0.4 * positives - shift * positives, 0.15), 0, 1)
        sets.append((positives, scores))
    threshold = screen.calibrate(sets)
    for positives, scores in sets:
        assert (scores[positives] >= threshold).mean() >= screen.KEEP
    # The highest such threshold: one step up loses a positive somewhere.
    higher = min(s for _, scores in sets for s in scores if s > threshold)
    assert any((scores[positives] >= higher).mean() < screen.KEEP for positives, scores in sets)


def test_a_set_where_the_model_flags_nothing_screens_nothing_out():
    flagged_nothing = (np.zeros(50, dtype=bool), np.linspace(0, 1, 50))
    some = (np.arange(50) > 40, np.linspace(0, 1, 50))
    assert screen.calibrate([some, flagged_nothing]) == 0.0


def test_figures_say_what_the_screen_answers_alone_and_what_the_cascade_loses():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    model = np.array([0.9, 0.8, 0.2, 0.9, 0.1, 0.1, 0.1, 0.1])  # threshold 0.5
    screened = np.array([0.7, 0.1, 0.9, 0.8, 0.1, 0.1, 0.1, 0.9])  # threshold 0.5
    f = screen.figures(labels, model, 0.5, screened, 0.5)
    assert f["screened_out"] == pytest.approx(4 / 8)
    assert f["screened_out_negatives"] == pytest.approx(3 / 5)
    assert f["model_positives"] == 3 and f["model_positives_kept"] == pytest.approx(2 / 3)
    assert f["model_positives_answered_alone"] == 1
    assert f["recall_model"] == pytest.approx(2 / 3) and f["recall_cascade"] == pytest.approx(1 / 3)
    assert f["fpr_model"] == pytest.approx(1 / 5) == f["fpr_cascade"]
    low, high = f["model_positives_kept_ci95"]
    assert low < 2 / 3 < high


def test_the_cascade_costs_the_screen_on_every_clip_and_the_model_on_what_passes():
    c = screen.cost(screen_s=0.01, model_s=1.0, screened_out=0.75)
    assert c["cascade_s"] == pytest.approx(0.26) and c["saving"] == pytest.approx(1 / 0.26)
    assert screen.cost(0.01, 1.0, 0.0)["saving"] < 1  # a screen that passes all only costs


def test_the_traced_screen_in_the_archive_scores_as_the_trained_one(tmp_path):
    trained = screen.new_screen(seed=3)
    trained.save_pretrained(tmp_path / "screen")
    path = screen.trace_into(str(tmp_path / "screen"), tmp_path / "archive")
    assert path.name == SCREEN_FILE
    served = Screen(path, 0.5, torch.device("cpu"))
    clips = torch.randn(3, 16_000 * 20, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert served.scores(clips).tolist() == pytest.approx(trained(clips).tolist(), abs=1e-5)
    assert served.passes(0.5) and not served.passes(0.4999)


def test_the_screen_is_far_smaller_than_the_spotter_it_screens_for():
    from modelzoo.keyword_spotter import KeywordSpotter

    def parameters(model):
        return sum(p.numel() for p in model.parameters())

    assert parameters(screen.new_screen(0)) * 10 < parameters(KeywordSpotter())


@pytest.mark.parametrize("budget", [-1.0, float("nan")])
def test_a_screen_budget_below_zero_is_refused_before_anything_trains(tmp_path, budget):
    from modelzoo.train_audio import TrainAudioRequest

    with pytest.raises(ValueError, match="screen_budget_s"):
        TrainAudioRequest(data=tmp_path, language="hi", out=tmp_path, manifest=tmp_path,
                          export_dir=tmp_path, screen_budget_s=budget)
