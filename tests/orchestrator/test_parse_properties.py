"""Property tests of every pipeline's parse and validate path: whatever bytes a message
holds, parsing gives a valid item or a Vigil error with a dead-letter reason, nothing else."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import orjson

from orchestrator.catalogue import Router
from orchestrator.config import RoutingConfig
from orchestrator.errors import BadMessage
from orchestrator.messages import (Envelope, parse_clip, parse_decision, parse_post,
                                   parse_views)
from tests.orchestrator.fakes import CATALOGUE

ROUTER = Router.for_audio(CATALOGUE, RoutingConfig(languages=("hi", "ta"), fallback=False))
# Dead-letter reasons a message's own content may earn (DESIGN.md, "Messages").
PARSE_REASONS = {"invalid_json", "missing_field", "invalid_field", "unknown_language"}

PARSERS: dict[str, Callable[[Envelope], Any]] = {
    "audio": lambda envelope: parse_clip(envelope, ROUTER.route),
    "vrt": parse_post,
    "minview": parse_views,
    "quality": parse_decision,
}
VALID = {
    "audio": {"clip_id": "c1", "stream_id": "s1", "language": "hi", "audio_b64": "AAAA",
              "created_at": "2026-11-28T10:00:00Z"},
    "vrt": {"post_id": "p1", "user_id": "u1", "created_at": "2026-11-28T10:00:00Z",
            "video_url": "https://media.example.com/v.mp4", "text": "hello", "language": "hi"},
    "minview": {"post_id": "p1", "views": 1000, "at": "2026-11-28T10:00:00Z"},
    "quality": {"item_id": "c1", "kind": "clip", "decision": "discard", "moderator_id": "m1",
                "decided_at": "2026-11-28T10:00:00Z"},
}

odd_text = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", " ", "\x00", "\u202e", "ﷺ" * 20, "𝕏", "nan", "Infinity", "1e999", "0x10"])
numbers = (st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1e308, -0.0]))
json_values = st.recursive(
    st.none() | st.booleans() | numbers | odd_text,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(odd_text, children, max_size=4),
    max_leaves=20)


def deep(levels: int, opener: str = "[") -> bytes:
    closer = {"[": "]", "{": "}"}[opener]
    if opener == "{":
        return ('{"a":' * levels + "1" + closer * levels).encode()
    return (opener * levels + closer * levels).encode()


def envelope(value: bytes) -> Envelope:
    return Envelope("in", 0, 7, b"k", value, 1_700_000_000_000)


def check(pipeline: str, value: bytes) -> None:
    """The property: a valid item whose kept fields re-encode, or a reasoned BadMessage."""
    try:
        item = PARSERS[pipeline](envelope(value))
    except BadMessage as error:
        assert error.reason in PARSE_REASONS, (type(error), error)
        return
    assert item.envelope.value == value
    fields = getattr(item, "extra", None)
    if fields is not None:
        orjson.dumps(fields)  # every kept field can be re-emitted


@pytest.mark.parametrize("pipeline", PARSERS)
@given(value=st.binary(max_size=200))
@example(value=deep(20_000))
@example(value=deep(20_000, "{"))
@example(value=deep(1_000))
@example(value=b"\xff\xfe\x00")
@example(value=b'{"a": NaN}')
@example(value=b'"\\ud800"')
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_arbitrary_bytes(pipeline, value):
    check(pipeline, value)


@pytest.mark.parametrize("pipeline", PARSERS)
@given(value=json_values)
@settings(max_examples=150, deadline=None)
def test_arbitrary_json_values(pipeline, value):
    check(pipeline, json.dumps(value, ensure_ascii=False).encode())


@pytest.mark.parametrize("pipeline", PARSERS)
@given(data=st.data())
@settings(max_examples=300, deadline=None)
def test_mutations_of_valid_messages(pipeline, data):
    message = dict(VALID[pipeline])
    for _ in range(data.draw(st.integers(1, 3))):
        field = data.draw(st.sampled_from(sorted(message)) | odd_text)
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            message.pop(field, None)
        else:
            message[field] = data.draw(json_values)
    check(pipeline, json.dumps(message, ensure_ascii=False).encode())


@pytest.mark.parametrize("pipeline", PARSERS)
@pytest.mark.parametrize("levels", [300, 1_000, 20_000])
def test_a_deeply_nested_extra_field_is_refused_not_raised(pipeline, levels):
    valid = json.dumps(VALID[pipeline])[:-1]
    value = valid.encode() + b', "extra": ' + deep(levels) + b"}"
    with pytest.raises(BadMessage) as caught:
        PARSERS[pipeline](envelope(value))
    assert caught.value.reason == "invalid_json"


TIME_FIELDS = {"audio": "created_at", "vrt": "created_at", "minview": "at",
               "quality": "decided_at"}


@pytest.mark.parametrize("pipeline", PARSERS)
@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59-01:00", "1970-01-01T00:00:00Z",
                                   "+275760-09-13T00:00:00Z", "2026-11-28T10:00:00+99:00"])
def test_every_pipeline_refuses_timestamps_outside_its_window(pipeline, stamp):
    message = {**VALID[pipeline], TIME_FIELDS[pipeline]: stamp}
    with pytest.raises(BadMessage) as caught:
        PARSERS[pipeline](envelope(json.dumps(message).encode()))
    assert caught.value.reason == "invalid_field"
