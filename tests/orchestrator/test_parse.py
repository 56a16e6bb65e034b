"""Clip messages: validated, routed to their language's model, unknown fields kept."""

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.catalogue import Router
from orchestrator.config import RoutingConfig
from orchestrator.errors import InvalidField, InvalidJson, MissingField, UnknownLanguage
from orchestrator.messages import Envelope, parse_clip
from tests.orchestrator.fakes import CATALOGUE

ROUTER = Router.for_audio(CATALOGUE, RoutingConfig(languages=("hi", "ta")))


def envelope(value, timestamp_ms=1_700_000_000_000):
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return Envelope("livestream.audio", 0, 5, b"k", raw, timestamp_ms)


GOOD = {"clip_id": "c1", "stream_id": "s1", "language": "hi", "audio_b64": "AAAA"}


def parse(value, router=ROUTER):
    return parse_clip(envelope(value), router.route)


def test_a_good_message_is_routed_to_its_language_model():
    clip = parse({**GOOD, "extra": 1, "created_at": "2026-11-28T10:00:00Z"})
    assert (clip.model.name, clip.model.version) == ("audio_nsfw_hi", "1.0")
    assert clip.created_at == 1795860000.0
    assert clip.extra == {"extra": 1}  # kept apart from the fields Vigil reads


def test_created_at_falls_back_to_the_kafka_timestamp():
    assert parse(GOOD).created_at == 1_700_000_000.0


def test_unknown_languages_go_to_the_catalogue_fallback_or_are_refused():
    assert parse({**GOOD, "language": "sw"}).model.name == "audio_nsfw_multi"
    without = Router.for_audio(CATALOGUE, RoutingConfig(languages=("hi",), fallback=False))
    with pytest.raises(UnknownLanguage):
        parse({**GOOD, "language": "ta"}, without)


@pytest.mark.parametrize("value, error", [
    (b"{", InvalidJson),
    (b'"a string"', InvalidJson),
    ({**GOOD, "clip_id": ""}, MissingField),
    ({k: v for k, v in GOOD.items() if k != "stream_id"}, MissingField),
    ({k: v for k, v in GOOD.items() if k != "audio_b64"}, MissingField),
    ({**GOOD, "language": ["hi"]}, InvalidField),
    ({**GOOD, "audio_b64": 12}, InvalidField),
    ({**GOOD, "created_at": "noon"}, InvalidField),
    ({**GOOD, "clip_id": "a\x00b"}, InvalidField),  # PostgreSQL text cannot hold NUL
    ({**GOOD, "stream_id": "s" * 257}, InvalidField),
    ({**GOOD, "clip_id": "line\nbreak"}, InvalidField),
])
def test_bad_messages_raise_the_error_their_dead_letter_is_filed_under(value, error):
    with pytest.raises(error):
        parse(value)


@pytest.mark.parametrize("value, match", [
    # Readers that keep the first of duplicate keys would see another clip than Vigil.
    (b'{"clip_id": "c1", "stream_id": "s1", "language": "hi", "audio_b64": "AAAA", '
     b'"clip_id": "c2"}', "duplicate key 'clip_id'"),
    (b'{"clip_id": "c1", "stream_id": "s1", "language": "hi", "audio_b64": "AAAA", '
     b'"x": {"a": 1, "a": 2}}', "duplicate key 'a'"),
])
def test_duplicate_keys_at_any_depth_are_refused(value, match):
    with pytest.raises(InvalidJson, match=match):
        parse(value)


def test_a_record_key_over_the_bound_is_refused_at_parse():
    with pytest.raises(InvalidField, match="record key is 1025 bytes"):
        parse_clip(Envelope("in", 0, 1, b"k" * 1025, json.dumps(GOOD).encode()), ROUTER.route)
    assert parse_clip(Envelope("in", 0, 1, b"k" * 1024, json.dumps(GOOD).encode()),
                      ROUTER.route).clip_id == "c1"


@pytest.mark.parametrize("stamp", [
    "9999-12-31T23:59:59-01:00",  # year 10000 in UTC: once raised in the sink, after scoring
    "1970-01-01T00:00:00Z",  # decades added to the end-to-end sums, an SLA miss counted
    "1999-12-31T23:59:59Z", "2999-01-01T00:00:00Z",
])
def test_timestamps_outside_2000_to_now_are_refused(stamp):
    with pytest.raises(InvalidField, match="created_at"):
        parse({**GOOD, "created_at": stamp})


def test_a_clock_a_little_ahead_is_accepted_and_a_bad_record_timestamp_is_replaced():
    ahead = datetime.now(timezone.utc) + timedelta(seconds=60)
    assert parse({**GOOD, "created_at": ahead.isoformat()}).created_at == pytest.approx(
        ahead.timestamp())
    forged = Envelope("in", 0, 1, b"k", json.dumps(GOOD).encode(), 253_402_300_799_000)
    assert abs(parse_clip(forged, ROUTER.route).created_at - time.time()) < 60


def test_unknown_fields_are_kept_apart_from_the_known_ones():
    clip = parse({**GOOD, "action": "allow", "score": 0.0})
    assert clip.extra == {"action": "allow", "score": 0.0}


def test_inline_audio_is_bounded_by_the_media_limit_not_the_text_limit():
    assert len(parse({**GOOD, "audio_b64": "A" * 200_000}).audio_b64) == 200_000
    with pytest.raises(InvalidField, match="100000"):
        parse({**GOOD, "audio_url": "https://m/" + "a" * 100_000})
