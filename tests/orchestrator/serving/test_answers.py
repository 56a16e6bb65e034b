"""A model's answer is checked before it becomes a verdict: finite, in range, a known label."""

import math

import pytest

from orchestrator.errors import BadModelResponse
from orchestrator.serving import answers

LABELS = ("safe", "nsfw")


@pytest.mark.parametrize("score", [0, 0.0, 0.5, 1, 1.0])
def test_a_probability_in_range_is_taken(score):
    assert answers.probability({"score": score}, "score", "m") == float(score)


@pytest.mark.parametrize("answer", [
    {"score": math.nan}, {"score": math.inf}, {"score": -math.inf}, {"score": -0.01},
    {"score": 1.0001}, {"score": None}, {"score": "0.5"}, {"score": True}, {"score": [0.5]},
    {}, None, [0.5], "0.5",
])
def test_anything_else_is_a_bad_model_response(answer):
    with pytest.raises(BadModelResponse) as caught:
        answers.probability(answer, "score", "audio_nsfw_hi")
    assert caught.value.reason == "bad_model_response"
    assert "audio_nsfw_hi" in str(caught.value)


def test_a_label_must_be_one_the_model_has():
    assert answers.label({"label": "nsfw"}, "label", LABELS, "m") == "nsfw"
    for bad in ("NSFW", "", None, 1, ["nsfw"]):
        with pytest.raises(BadModelResponse):
            answers.label({"label": bad}, "label", LABELS, "m")


def test_an_embedding_is_absent_or_finite_numbers():
    assert answers.embedding({"embedding": None}, "m") is None
    assert answers.embedding({"embedding": [1, 0.5]}, "m") == [1.0, 0.5]
    for bad in ([], [0.1, math.nan], [math.inf], ["0.1"], [True], "x", {"a": 1}):
        with pytest.raises(BadModelResponse):
            answers.embedding({"embedding": bad}, "m")
    with pytest.raises(BadModelResponse):
        answers.embedding({}, "m")
