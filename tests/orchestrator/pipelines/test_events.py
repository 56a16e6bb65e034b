"""What the daemons re-emit: Vigil's fields at the top, the input's other fields under
``extra`` where no reader can take them for Vigil's, and a summary when the whole is too big."""

from __future__ import annotations

import json

import pytest

from orchestrator.errors import BadModelResponse, MissingField
from orchestrator.messages import Envelope, parse_clip, parse_post
from orchestrator.pipelines.audio import Verdict
from orchestrator.pipelines.vrt import PostScore
from tests.orchestrator.fakes import AUDIO

LABELS = ("safe", "nudity", "sexual", "violence", "gore", "abusive", "hate")


def envelope(message: dict) -> Envelope:
    return Envelope("in", 0, 1, b"k", json.dumps(message).encode())


def test_a_clip_field_named_like_a_verdict_field_never_reaches_the_top_level():
    clip = parse_clip(envelope({"clip_id": "c1", "stream_id": "s1", "language": "hi",
                                "audio_b64": "AAAA", "action": "allow", "label": "safe",
                                "created_at": "2026-11-28T10:00:00Z"}),
                      lambda language: AUDIO[0])
    verdict = Verdict.from_answer(clip, AUDIO[0], {"score": 0.9, "label": "nsfw",
                                                   "threshold": 0.5})
    event = verdict.event()
    assert event["label"] == "nsfw" and "action" not in event
    assert event["extra"] == {"action": "allow", "label": "safe"}
    assert event["created_at"] == "2026-11-28T10:00:00.000Z" and "audio_b64" not in event
    assert set(verdict.summary()) == set(event) - {"audio_url", "extra"}


def _clip():
    return parse_clip(envelope({"clip_id": "c1", "stream_id": "s1", "language": "hi",
                                "audio_b64": "AAAA"}), lambda language: AUDIO[0])


def test_a_verdict_says_what_scored_the_clip_and_refuses_a_scorer_it_does_not_know():
    answer = {"score": 0.0, "label": "safe", "threshold": 0.5}
    for scorer in ("energy_gate", "screen", "model"):
        verdict = Verdict.from_answer(_clip(), AUDIO[0], {**answer, "scored_by": scorer})
        assert verdict.event()["scored_by"] == scorer
    # An archive built before the gate names no scorer: its model scored the clip.
    assert Verdict.from_answer(_clip(), AUDIO[0], answer).summary()["scored_by"] == "model"
    for scorer in ("screen\n", "cascade", 3, None):
        with pytest.raises(BadModelResponse, match="scored_by"):
            Verdict.from_answer(_clip(), AUDIO[0], {**answer, "scored_by": scorer})


def test_a_post_event_keeps_its_known_fields_and_puts_the_rest_under_extra():
    post = parse_post(envelope({"post_id": "p1", "user_id": "u1", "text": "hello",
                                "language": "hi", "score": 0.0, "top_category": "safe",
                                "created_at": "2026-11-28T10:00:00Z"}))
    answer = {"score": 0.7, "top_category": "nudity",
              "categories": {label: 1 / len(LABELS) for label in LABELS}}
    event = PostScore.from_answer(post, answer, LABELS, ["text"], "vrt_fusion").event()
    assert (event["score"], event["top_category"]) == (0.7, "nudity")
    assert event["extra"] == {"score": 0.0, "top_category": "safe"}
    assert (event["text"], event["language"]) == ("hello", "hi")


@pytest.mark.parametrize("text", ["\u200b\u200b\u200b", "\u200d\ufeff \u2060", "\u3164",
                                  "\u00ad\u180e\n\t"])
def test_text_that_shows_nothing_is_no_text(text):
    base = {"post_id": "p1", "user_id": "u1", "created_at": "2026-11-28T10:00:00Z"}
    with pytest.raises(MissingField, match="visible text"):
        parse_post(envelope({**base, "text": text}))
    assert parse_post(envelope({**base, "text": text + "x"})).text == text + "x"
    with_image = parse_post(envelope({**base, "text": text, "image_url": "https://m/i.png"}))
    assert with_image.text is None  # not sent to the text model as if it said something
