import json

import pytest

from orchestrator.config import RoutingConfig
from orchestrator.errors import InvalidField, InvalidJson, MissingField, UnknownLanguage
from orchestrator.pipelines.audio import parse, route
from orchestrator.source import Envelope

ROUTING = RoutingConfig(languages=("hi", "ta"), fallback_model="audio_nsfw_multi")


def envelope(value, timestamp_ms=1_700_000_000_000):
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return Envelope("livestream.audio", 0, 5, b"k", raw, timestamp_ms)


GOOD = {"clip_id": "c1", "stream_id": "s1", "language": "hi", "audio_b64": "AAAA"}


def test_a_good_message_is_routed_to_its_language_model():
    request = parse(envelope({**GOOD, "extra": 1, "created_at": "2026-11-28T10:00:00Z"}), ROUTING)
    assert request.model == "audio_nsfw_hi"
    assert request.created_at == 1795860000.0
    assert request.message["extra"] == 1


def test_created_at_falls_back_to_the_kafka_timestamp():
    assert parse(envelope(GOOD), ROUTING).created_at == 1_700_000_000.0


def test_unknown_language_uses_the_fallback_or_is_refused():
    assert route("sw", ROUTING) == "audio_nsfw_multi"
    with pytest.raises(UnknownLanguage):
        route("sw", RoutingConfig(languages=("hi",), fallback_model=""))


@pytest.mark.parametrize("value, error", [
    (b"{", InvalidJson),
    (b'"a string"', InvalidJson),
    ({**GOOD, "clip_id": ""}, MissingField),
    ({k: v for k, v in GOOD.items() if k != "stream_id"}, MissingField),
    ({k: v for k, v in GOOD.items() if k != "audio_b64"}, MissingField),
    ({**GOOD, "language": ["hi"]}, InvalidField),
    ({**GOOD, "audio_b64": 12}, InvalidField),
    ({**GOOD, "created_at": "noon"}, InvalidField),
])
def test_bad_messages_raise_the_error_their_dead_letter_is_filed_under(value, error):
    with pytest.raises(error):
        parse(envelope(value), ROUTING)
