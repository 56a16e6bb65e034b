"""Training data, threshold calibration and the training loop of `vigil train audio`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile

from modelzoo import audio_training, speech
from modelzoo.audio_training import calibrate, parse_target

HAND_LABELS = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1], dtype=bool)
HAND_SCORES = np.array([0.05, 0.1, 0.15, 0.2, 0.3, 0.35, 0.4, 0.5, 0.62, 0.9,
                        0.45, 0.6, 0.7, 0.8, 0.95])


def test_at_most_one_percent_fpr_the_threshold_clears_every_negative():
    result = calibrate(HAND_LABELS, HAND_SCORES, "fpr:0.01")
    assert result["threshold"] == 0.95  # the lowest threshold above the 0.9 negative
    assert (result["recall"], result["fpr"], result["precision"]) == (0.2, 0.0, 1.0)


def test_a_looser_fpr_buys_recall():
    result = calibrate(HAND_LABELS, HAND_SCORES, "fpr:0.2")  # two of ten negatives allowed
    assert result["threshold"] == 0.6
    assert result["fpr"] == pytest.approx(0.2) and result["recall"] == pytest.approx(0.8)


def test_a_recall_target_keeps_the_highest_threshold_that_reaches_it():
    result = calibrate(HAND_LABELS, HAND_SCORES, "recall:0.95")
    assert result["threshold"] == 0.45 and result["recall"] == 1.0
    assert result["fpr"] == pytest.approx(0.3)  # 0.5, 0.62 and 0.9 of ten negatives
    assert calibrate(HAND_LABELS, HAND_SCORES, "recall:0.6")["threshold"] == 0.7
    assert math.isclose(result["auc"], 43 / 50)  # positive above negative in 43 of 50 pairs


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
            assert any(miss in clip.text for miss in options.near_misses)
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
