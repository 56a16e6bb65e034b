"""Clip messages: validated, routed to their language's model, unknown fields kept."""

import json

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
    assert clip.fields["extra"] == 1


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
