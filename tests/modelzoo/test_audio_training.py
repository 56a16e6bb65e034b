"""Training data, threshold calibration and the training loop of `vigil train audio`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from modelzoo import audio_training, speech
from modelzoo.audio_training import (calibrate, parse_target, rates, threshold_for,
                                     write_report)

HAND_LABELS = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1], dtype=bool)
HAND_SCORES = np.array([0.05, 0.1, 0.15, 0.2, 0.3, 0.35, 0.4, 0.5, 0.62, 0.9,
                        0.45, 0.6, 0.7, 0.8, 0.95])


def test_at_most_one_percent_fpr_the_threshold_clears_every_negative():
    threshold = threshold_for(HAND_LABELS, HAND_SCORES, "fpr:0.01")
    assert threshold == 0.95  # the lowest threshold above the 0.9 negative
    result = rates(HAND_LABELS, HAND_SCORES, threshold)
    assert (result["recall"], result["fpr"], result["precision"]) == (0.2, 0.0, 1.0)


def test_a_threshold_that_flags_nothing_has_no_precision_and_the_report_stays_json(tmp_path):
    result = rates(HAND_LABELS, HAND_SCORES, 0.99)
    assert (result["precision"], result["recall"], result["fpr"]) == (None, 0.0, 0.0)
    metrics = {"threshold": 0.99, "target": "fpr:0.01", "calibrated_on": ["held-out"],
               "size": "small", "train_clips": 15, "train_seconds": 1.0, "epochs_run": 1,
               "best_epoch": 1, "judged_on": "held-out", "held_out": result}
    write_report(tmp_path, language="hi", metrics=metrics,
                 curves={"held_out": (HAND_LABELS, HAND_SCORES)})
    assert json.loads((tmp_path / "metrics.json").read_text())["held_out"]["precision"] is None
    assert "| n/a |" in (tmp_path / "report.md").read_text()


def test_a_looser_fpr_buys_recall():
    threshold = threshold_for(HAND_LABELS, HAND_SCORES, "fpr:0.2")  # two of ten negatives
    result = rates(HAND_LABELS, HAND_SCORES, threshold)
    assert threshold == 0.6
    assert result["fpr"] == pytest.approx(0.2) and result["recall"] == pytest.approx(0.8)


def test_a_recall_target_keeps_the_highest_threshold_that_reaches_it():
    threshold = threshold_for(HAND_LABELS, HAND_SCORES, "recall:0.95")
    result = rates(HAND_LABELS, HAND_SCORES, threshold)
    assert threshold == 0.45 and result["recall"] == 1.0
    assert result["fpr"] == pytest.approx(0.3)  # 0.5, 0.62 and 0.9 of ten negatives
    assert threshold_for(HAND_LABELS, HAND_SCORES, "recall:0.6") == 0.7
    assert math.isclose(result["auc"], 43 / 50)  # positive above negative in 43 of 50 pairs
    assert result["recall_at_1pct_fpr"] == pytest.approx(0.2)


def test_calibrating_on_several_sets_holds_the_target_on_each():
    # Another set whose negatives score higher, as speech unlike the training set's can.
    shifted_labels = np.array([0, 0, 0, 0, 1, 1], dtype=bool)
    shifted_scores = np.array([0.2, 0.5, 0.7, 0.97, 0.96, 0.99])
    sets = [(HAND_LABELS, HAND_SCORES), (shifted_labels, shifted_scores)]
    threshold = calibrate(sets, "fpr:0.01")
    assert threshold == 0.99  # 0.95 alone would flag a quarter of the second set's negatives
    assert all(rates(*s, threshold)["fpr"] == 0 for s in sets)
    assert calibrate(sets, "recall:0.95") == 0.45  # every set keeps its recall


def test_the_target_allows_a_share_of_each_sets_negatives_and_none_of_too_few():
    def negatives(count: int) -> np.ndarray:
        return np.array([True] * 10 + [False] * count)

    assert audio_training.allowed_false_positives(negatives(300), "fpr:0.01") == 3
    assert audio_training.allowed_false_positives(negatives(299), "fpr:0.01") == 2
    assert audio_training.allowed_false_positives(negatives(50), "fpr:0.01") == 0
    assert audio_training.allowed_false_positives(negatives(50), "fpr:0.02") == 1
    assert audio_training.allowed_false_positives(negatives(50), "recall:0.9") is None


def test_rates_come_with_wilson_intervals_that_are_honest_at_zero():
    labels = np.array([True] * 100 + [False] * 300)
    values = np.r_[np.linspace(0.5, 1.0, 100), np.linspace(0.0, 0.4, 300)]
    nothing_flagged = rates(labels, values, 0.99)  # 2 of 100 positives, no negative
    low, high = nothing_flagged["fpr_ci95"]
    assert low == 0 and 0.012 < high < 0.013  # 0 of 300 at 95%: 0 to 1.3%, not 0 to 0
    assert nothing_flagged["negatives"] == 300
    half = rates(labels, values, 0.75)
    low, high = half["recall_ci95"]
    assert low < half["recall"] < high and 0.08 < high - low < 0.2  # about +-10 points at 100
    assert audio_training.wilson_interval(0, 0) == [0.0, 1.0]


def test_the_report_warns_where_a_calibration_set_cannot_resolve_the_target(tmp_path):
    result = rates(HAND_LABELS, HAND_SCORES, 0.95)
    metrics = {"threshold": 0.95, "target": "fpr:0.01", "size": "small", "train_clips": 15,
               "train_seconds": 1.0, "epochs_run": 1, "best_epoch": 1,
               "judged_on": "held-out", "held_out": result,
               "calibrated_on": ["held-out", "shifted validation"],
               "calibration": [{"set": "held-out", "negatives": 400,
                                "allowed_false_positives": 4},
                               {"set": "shifted validation", "negatives": 50,
                                "allowed_false_positives": 0}]}
    write_report(tmp_path, language="hi", metrics=metrics,
                 curves={"held_out": (HAND_LABELS, HAND_SCORES)})
    report = (tmp_path / "report.md").read_text()
    assert "held-out: 400 negatives; fpr:0.01 lets at most 4 of them be flagged." in report
    warnings = [line for line in report.splitlines() if "**Warning**" in line]
    assert len(warnings) == 1 and "shifted validation holds too few negatives" in warnings[0]
    assert "Give it 300 or more" in warnings[0]
    assert "| 20.0% (" in report  # the held-out recall, with its interval


def test_epochs_are_judged_on_a_stratified_sample_of_a_large_validation_set():
    labels = np.array([True] * 100 + [False] * 300)
    whole = audio_training.LabelledSet("shifted validation", [np.zeros(1)] * 400, labels)
    sample = whole.sample(100, seed=0)
    assert sample.name == whole.name and len(sample.labels) == 100
    assert sample.labels.sum() == 25  # the whole set's share of positives
    assert whole.sample(400, seed=0) is whole
    one_positive = audio_training.LabelledSet("v", [np.zeros(1)] * 200,
                                              np.array([True] + [False] * 199))
    assert one_positive.sample(100, seed=0) is one_positive  # nothing to stratify
    with pytest.raises(ValueError, match="judge_clips"):
        audio_training.AudioTrainingOptions(judge_clips=2)


@pytest.mark.parametrize("target", ["fpr:0", "fpr:1.5", "precision:0.9", "recall", "fpr:x"])
def test_targets_are_read_strictly(target):
    with pytest.raises(ValueError, match="target"):
        parse_target(target)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("speech")
    options = speech.SpeechSetOptions(language="hi", clips=12, seed=3, seconds=4.0)
    return options, out, speech.generate(options, out)


def test_the_generator_labels_match_what_is_said(generated):
    options, out, clips = generated
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == len(clips) == 12
    for clip in clips:
        said = clip.text.split()
        says_policy_word = any(word in said for word in options.policy_words)
        assert says_policy_word == (clip.label == speech.POSITIVE), clip.text
        if clip.kind == "near_miss":
            assert any(miss in clip.text.split() for miss in options.misses)
        samples, rate = soundfile.read(out / clip.path)
        assert rate == speech.SAMPLE_RATE_HZ and len(samples) == 4 * rate
    assert {c.kind for c in clips} == {"positive", "negative", "near_miss"}


def test_the_generator_is_reproducible_from_its_seed(generated, tmp_path):
    options, out, clips = generated
    again = speech.generate(options, tmp_path)
    assert [c.text for c in again] == [c.text for c in clips]
    assert (tmp_path / again[5].path).read_bytes() == (out / clips[5].path).read_bytes()
    other = speech.generate(speech.SpeechSetOptions(language="hi", clips=12, seed=4,
                                                    seconds=4.0), tmp_path / "other")
    assert [c.text for c in other] != [c.text for c in clips]


def test_labelled_data_needs_both_labels(tmp_path):
    (tmp_path / "manifest.jsonl").write_text(
        "\n".join(json.dumps({"path": f"{i}.wav", "label": "safe"}) for i in range(5)))
    with pytest.raises(ValueError, match="at least 2 clips of each label"):
        audio_training.read_labelled(tmp_path)
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"path": "a.wav", "label": "spicy"}))
    with pytest.raises(ValueError, match="not nsfw/safe"):
        audio_training.read_labelled(tmp_path)


def test_the_shifted_style_differs_from_training_in_every_dimension():
    training, shifted = speech.TRAINING, speech.SHIFTED
    fields = [f for f in speech.SpeechStyle.__dataclass_fields__ if f != "name"]
    assert all(getattr(training, f) != getattr(shifted, f) for f in fields), [
        f for f in fields if getattr(training, f) == getattr(shifted, f)]
    for disjoint in ("words", "near_misses", "variants", "backgrounds", "babble_languages",
                     "codecs"):
        assert not set(getattr(training, disjoint)) & set(getattr(shifted, disjoint)) - {
            speech.BABBLE}, disjoint
    assert training.word_at == "anywhere" and shifted.word_at == "edges"


def test_a_shifted_set_sounds_the_way_its_style_says(tmp_path):
    options = speech.SpeechSetOptions(language="hi", clips=16, seed=5, seconds=8.0,
                                      style="shifted")
    clips = speech.generate(options, tmp_path)
    style = speech.SHIFTED
    for clip in clips:
        assert clip.voice["voice"].split("+")[1] in style.variants
        assert style.speed_wpm[0] <= clip.voice["speed"] <= style.speed_wpm[1]
        assert clip.sound["background"] in style.backgrounds
        assert clip.sound["codec"] is None or clip.sound["codec"].split()[0] in {
            codec for codec, _ in style.codecs}
        assert clip.sound["room"] in (None, "decay")
        phrases = [p.split() for p in clip.text.split(" | ")]
        everyday = [w for p in phrases for w in p if w not in options.policy_words
                    and w not in style.near_misses]
        assert set(everyday) <= set(style.words)
        if clip.kind != "negative":  # the word sits at an edge of its phrase
            assert any(p[0] in (*options.policy_words, *style.near_misses)
                       or p[-1] in (*options.policy_words, *style.near_misses) for p in phrases)
            start, end = clip.word_span
            assert clip.span[0] <= start < end <= clip.span[1]


def test_invented_words_never_pass_for_a_policy_word_or_a_near_miss():
    import random

    from modelzoo import vocabulary

    rng = random.Random(3)
    avoid = (*speech.DEFAULT_POLICY_WORDS, *speech.TRAINING_NEAR_MISSES)
    words = [vocabulary.invented(rng, avoid) for _ in range(2000)]
    assert len(set(words)) > 1500  # a vocabulary no list could give
    assert not [w for w in words for other in avoid
                if any(w[i:i + 3] in other for i in range(len(w) - 2))]


def _trained_weights(ema_decay: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A spotter's last layer before and after one epoch of three steps on tones and noise."""
    from modelzoo.keyword_spotter import KeywordSpotter, SpotterConfig

    torch.manual_seed(0)
    model = KeywordSpotter(SpotterConfig(channels=16))
    before = model.classifier.weight.detach().clone()
    rng = np.random.default_rng(0)
    t = np.arange(16_000) / 16_000
    waves = [(np.sin(2 * np.pi * 440 * t) if positive else rng.normal(size=t.size)).astype(
        np.float32) for positive in [True, False] * 6]
    clips = [audio_training.LabelledClip(Path(f"{i}.wav"), i % 2 == 0) for i in range(12)]
    options = audio_training.AudioTrainingOptions(max_epochs=1, batch_size=3,
                                                  ema_decay=ema_decay)
    trained, _ = audio_training.train(model, clips, waves, options)
    return before, trained.classifier.weight.detach()


def test_training_keeps_the_weights_average_which_lags_the_last_step():
    before, last_step = _trained_weights(ema_decay=0.0)
    before_too, averaged = _trained_weights(ema_decay=0.99)
    assert torch.equal(before, before_too)
    # Three steps: the average is still close to the first step's weights.
    assert (averaged - before).norm() < 0.7 * (last_step - before).norm()
    with pytest.raises(ValueError, match="ema_decay"):
        audio_training.AudioTrainingOptions(ema_decay=1.0)


def test_whole_clips_as_long_as_the_background_tracks_are_augmented_too():
    from modelzoo.augment import AugmentOptions, Augmenter

    augment = Augmenter(AugmentOptions(background_share=1.0, speed_share=0, room_share=0,
                                       codec_share=0))
    for seconds in (20, 25):
        clip = np.full(seconds * 16_000, 0.1, np.float32)
        heard = augment(clip)
        assert heard.shape == clip.shape and not np.allclose(heard, clip * heard[0] / clip[0])
