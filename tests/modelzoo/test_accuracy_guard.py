"""The accuracy guard can fail: on representative audio (speech, silence, noise, music, and
clips that differ only in their last seconds) it refuses an engine that does not track
eager, however small its differences look on Gaussian noise."""

from __future__ import annotations

import pytest
import torch

from modelzoo import accuracy, audio_checks, audio_classifier, engine_choice, engines, families

MARGIN_SPREAD = 3.0  # the logit margin's standard deviation over calibration clips


@pytest.fixture(scope="module")
def model() -> audio_classifier.AudioNsfwClassifier:
    """A tiny classifier whose scores spread over representative audio, as a trained one's
    do (a random head's hardly move), centred on the threshold."""
    model = audio_classifier.from_size("tiny", seed=5).eval()
    head = model.head
    calibration = families.calibration("audio_nsfw", model)
    def margins() -> torch.Tensor:
        logits = torch.cat([model.logits(batch) for batch in calibration])
        return logits[:, model.positive_index] - logits[:, 1 - model.positive_index]

    with torch.no_grad():
        scale = MARGIN_SPREAD / margins().std()
        head.weight *= scale
        head.bias *= scale
        head.bias[model.positive_index] -= margins().median()
    return model


@pytest.fixture(scope="module")
def checks(model) -> list[torch.Tensor]:
    return families.checks("audio_nsfw", model, (1, 3, 8))


def test_the_check_inputs_are_representative_and_disjoint_from_calibration(model, checks):
    calibration = torch.cat(families.calibration("audio_nsfw", model))
    clips = torch.cat(checks)
    assert len(clips) == 24 and len(calibration) == 32
    assert not any(torch.equal(c, k) for c in calibration for k in clips)
    levels = clips.pow(2).mean(dim=1).sqrt()
    assert levels.min() < 1e-3 and levels.max() > 0.3  # near silence and loud noise
    tail = audio_checks.TAIL_SECONDS * audio_classifier.SAMPLE_RATE_HZ
    pairs = [(a, b) for a, b in zip(clips, clips[1:])
             if torch.equal(a[:-tail], b[:-tail]) and not torch.equal(a, b)]
    assert pairs  # clips that differ only in their last ten seconds
    scores = accuracy.outputs(model, checks)
    assert (scores.max() - scores.min()).item() > 0.5


def test_an_engine_that_hears_half_of_each_clip_fails(model, checks):
    half = audio_classifier.CLIP_SAMPLES // 2

    def deaf_to_the_end(clips: torch.Tensor) -> torch.Tensor:
        return model(torch.cat([clips[:, :half], torch.zeros_like(clips[:, half:])], dim=1))

    with pytest.raises(accuracy.EngineMismatch):
        engine_choice.verify(deaf_to_the_end, model, "int8", "score", checks, 0.5)


def test_int8_calibrated_on_silence_fails_and_an_engine_that_tracks_eager_passes(
        model, checks, tmp_path):
    silence = [torch.zeros(8, audio_classifier.CLIP_SAMPLES)] * 4
    deaf = engines.build("openvino", "int8", model, model.example(2), tmp_path / "s", silence)
    with pytest.raises(accuracy.EngineMismatch):
        engine_choice.verify(deaf, model, "int8", "score", checks, 0.5)
    faithful = engines.build("onnxruntime", "fp32", model, model.example(2), tmp_path / "f")
    result = accuracy.compare("score", accuracy.outputs(model, checks),
                              accuracy.outputs(faithful, checks), 0.5)
    assert result["passed"] and result["correlation"] > 0.999
    assert result["eager_spread"] > 0.5 and result["difference_bound"] == 0.01


def test_the_guard_bounds_differences_by_the_spread_and_wants_the_scores_tracked():
    eager = torch.linspace(0.475, 0.525, 24)  # a model whose scores hardly move
    close = accuracy.compare("score", eager, eager + 0.007, 0.0)  # under 0.01, over 0.1 x 0.05
    assert close["difference_bound"] == pytest.approx(0.005) and not close["passed"]
    assert close["eager_spread"] == pytest.approx(0.05)
    assert accuracy.compare("score", eager, eager + 0.0005, 0.0)["passed"]
    wide = torch.linspace(0.0, 1.0, 24)
    assert accuracy.compare("score", wide, wide + 0.004, 0.0)["passed"]
    assert not accuracy.compare("score", eager, eager + 0.02, 0.0)["passed"]
    untracked = eager[torch.randperm(24, generator=torch.Generator().manual_seed(0))]
    shuffled = accuracy.compare("score", eager, untracked, 0.0)
    assert shuffled["correlation"] < 0.5 and not shuffled["passed"]
    assert not accuracy.compare("score", eager, torch.full_like(eager, 0.5), 0.0)["passed"]
