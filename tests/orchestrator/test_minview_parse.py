import json

import pytest

from orchestrator.errors import InvalidField, InvalidJson, MissingField
from orchestrator.messages import Envelope
from orchestrator.messages import parse_views as parse


def envelope(value) -> Envelope:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return Envelope("posts.views", 0, 3, b"p1", raw, 1_700_000_000_000)


def test_a_views_event_is_read_with_its_time():
    event = parse(envelope({"post_id": "p1", "views": 1200, "at": "2026-11-28T10:00:00Z"}))
    assert (event.post_id, event.views, event.at) == ("p1", 1200, 1795860000.0)
    assert parse(envelope({"post_id": "p1", "views": 0})).at == 1_700_000_000.0


@pytest.mark.parametrize("value, error, match", [
    (b"{not json", InvalidJson, "not UTF-8 JSON"),
    ([1, 2], InvalidJson, "not an object"),
    ({"views": 1000}, MissingField, "post_id"),
    ({"post_id": "p1"}, MissingField, "views"),
    ({"post_id": "p1", "views": -5}, InvalidField, "0..100000000000"),
    # One event with 10^15 views would decide every net at once.
    ({"post_id": "p1", "views": 10**15}, InvalidField, "0..100000000000"),
    ({"post_id": "p1", "views": 1000, "at": "1970-01-01T00:00:00Z"}, InvalidField, "2000"),
    ({"post_id": "p1", "views": "1000"}, InvalidField, "integer"),
    ({"post_id": "p1", "views": True}, InvalidField, "integer"),
    ({"post_id": 7, "views": 1000}, InvalidField, "string"),
    ({"post_id": "p1", "views": 1000, "at": "yesterday"}, InvalidField, "ISO 8601"),
])
def test_bad_events_name_what_is_wrong(value, error, match):
    with pytest.raises(error, match=match):
        parse(envelope(value))
