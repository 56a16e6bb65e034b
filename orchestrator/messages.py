"""What arrives on the input topics, as typed messages, and how each is parsed and checked.

A parse function takes an :class:`Envelope` and returns its typed message, or raises a
:class:`~orchestrator.errors.BadMessage` naming what is wrong. Values are decoded with
orjson: it refuses nesting past 1,024 levels with a decode error (the standard library
raises ``RecursionError``), and NaN, Infinity and lone surrogates, none of which could be
re-emitted as valid JSON, and a value with duplicate keys (readers that keep the first
would see another message than readers that keep the last). Every field is bounded: ids,
the record's key, texts, numbers and timestamps (from 2000 to now plus a clock skew); a bound
passed is :class:`~orchestrator.errors.InvalidField`. The input's fields Vigil does not know
are kept apart (``extra``), for the events that re-emit them under a key of their own.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from orchestrator.catalogue import ModelEntry
from orchestrator.clock import parse_iso
from orchestrator.errors import InvalidField, InvalidJson, MissingField

Partition = tuple[str, int]
MAX_ID_CHARS = 256  # ids are keys in the database and on the topics
MAX_KEY_BYTES = 1024  # a record's key is re-emitted with its verdict and its dead letter
MAX_TEXT_CHARS = 100_000  # a caption, a URL: far above any real one, far below a record
EARLIEST_S = 946_684_800.0  # 2000-01-01T00:00:00Z: nothing Vigil scores is older
MAX_CLOCK_SKEW_S = 600.0  # how far ahead of this host a producer's clock may run
MAX_VIEWS = 10**11  # more views than any post has had
# Invisible characters that are not format (Cf) or separators (Z*) by category.
INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800")


@dataclass(frozen=True, slots=True)
class Envelope:
    """One consumed record: where it came from and its raw key and value."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None

    @property
    def position(self) -> Partition:
        return (self.topic, self.partition)


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def json_object(envelope: Envelope) -> dict[str, Any]:
    """The value as a JSON object whose fields can be re-emitted; else :class:`InvalidJson`
    (:class:`InvalidField` for a record key over :data:`MAX_KEY_BYTES`)."""
    if envelope.key is not None and len(envelope.key) > MAX_KEY_BYTES:
        raise InvalidField(f"the record key is {len(envelope.key)} bytes, over "
                           f"{MAX_KEY_BYTES}")
    try:
        message = orjson.loads(envelope.value or b"")
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"value is not UTF-8 JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise InvalidJson(f"value is JSON {type(message).__name__}, not an object")
    try:
        # Kept fields are re-emitted: refuse now what the encoder would refuse later
        # (orjson encodes at most 254 levels), not when the result is written.
        orjson.dumps(message)
    except orjson.JSONEncodeError as exc:
        raise InvalidJson(f"value cannot be re-emitted as JSON: {exc}") from exc
    try:
        # orjson keeps the last of duplicate keys; the standard library's hook sees them
        # all (safe here: orjson has already refused deep nesting, NaN and bad UTF-8).
        json.loads(envelope.value or b"", object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise InvalidJson(f"duplicate key {str(exc)[:50]!r} in the value") from exc
    return message


def extra_fields(message: Mapping[str, Any], known: Collection[str]) -> dict[str, Any]:
    """The fields of ``message`` that are not in ``known``, as received."""
    return {name: value for name, value in message.items() if name not in known}


def identifier(message: Mapping[str, Any], name: str) -> str:
    """A required id: a non-empty string of printable characters, at most 256 of them.

    A NUL cannot be stored in PostgreSQL text and a control character would garble logs and
    tables, so both are refused here, for this message alone.
    """
    value = message.get(name)
    if value is None or value == "":
        raise MissingField(f"missing field {name!r}")
    if not isinstance(value, str):
        raise InvalidField(f"field {name!r} must be a string")
    if not valid_identifier(value):
        raise InvalidField(f"field {name!r} must be 1..{MAX_ID_CHARS} printable characters")
    return value


def valid_identifier(value: str) -> bool:
    """The one rule for an id, in messages, tables and APIs alike: 1 to 256 printable
    characters (no NUL, no control character)."""
    return 0 < len(value) <= MAX_ID_CHARS and value.isprintable()


def optional_text(message: Mapping[str, Any], name: str,
                  max_chars: int | None = MAX_TEXT_CHARS) -> str | None:
    """An optional string field (None when absent, null or empty) of at most ``max_chars``
    (None: bounded elsewhere, as inline media is by ``media.max_bytes``)."""
    value = message.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidField(f"field {name!r} must be a string")
    if "\x00" in value:
        raise InvalidField(f"field {name!r} must not hold NUL characters")
    if max_chars is not None and len(value) > max_chars:
        raise InvalidField(f"field {name!r} is {len(value)} characters, over {max_chars}")
    return value


def visible(text: str | None) -> str | None:
    """``text``, or None when it holds nothing a reader could see (whitespace, zero-width
    and other format characters only)."""
    if text is None or not any(unicodedata.category(c)[0] not in "CZ" and c not in INVISIBLE
                               for c in text):
        return None
    return text


def in_window(seconds: float, now: float) -> bool:
    """Whether epoch ``seconds`` lies between 2000 and ``now`` plus the clock skew."""
    return EARLIEST_S <= seconds <= now + MAX_CLOCK_SKEW_S


def instant(message: Mapping[str, Any], name: str, envelope: Envelope) -> float:
    """An ISO 8601 field as epoch seconds, between 2000 and now plus a clock skew
    (:class:`InvalidField` otherwise); when the field is absent, the record's timestamp,
    or now where that is absent or outside the same window."""
    now = time.time()
    stamp = message.get(name)
    if stamp is None or stamp == "":
        record = envelope.timestamp_ms / 1000 if envelope.timestamp_ms else now
        return record if in_window(record, now) else now
    if not isinstance(stamp, str):
        raise InvalidField(f"{name} must be an ISO 8601 string")
    try:
        seconds = parse_iso(stamp)
    except (ValueError, OverflowError) as exc:
        raise InvalidField(f"{name} is not ISO 8601: {stamp[:50]!r}") from exc
    if not in_window(seconds, now):
        raise InvalidField(f"{name} {stamp[:50]!r} is not between 2000 and now (plus "
                           f"{MAX_CLOCK_SKEW_S:.0f} s of clock skew)")
    return seconds


@dataclass(frozen=True, slots=True)
class ClipMessage:
    """A ``livestream.audio`` clip, routed to the model of its language."""

    envelope: Envelope
    extra: dict[str, Any]  # the fields Vigil does not know, for the verdict event
    clip_id: str
    stream_id: str
    language: str
    model: ModelEntry
    audio_url: str | None
    audio_b64: str | None
    created_at: float  # epoch seconds
    received_at: float  # monotonic seconds


CLIP_FIELDS = ("clip_id", "stream_id", "language", "audio_url", "audio_b64", "created_at")


def parse_clip(envelope: Envelope, route: Callable[[str], ModelEntry]) -> ClipMessage:
    """Validate a clip message and route it; raises a :class:`BadMessage`."""
    message = json_object(envelope)
    clip_id, stream_id = identifier(message, "clip_id"), identifier(message, "stream_id")
    language = identifier(message, "language")
    audio_url = optional_text(message, "audio_url")
    audio_b64 = optional_text(message, "audio_b64", max_chars=None)
    if audio_url is None and audio_b64 is None:
        raise MissingField("one of 'audio_url' or 'audio_b64' is required")
    return ClipMessage(envelope, extra_fields(message, CLIP_FIELDS), clip_id, stream_id,
                       language, route(language),
                       audio_url, audio_b64, instant(message, "created_at", envelope),
                       time.monotonic())


@dataclass(frozen=True, slots=True)
class PostMessage:
    """A ``posts.created`` post: media (a video or an image) and/or text."""

    envelope: Envelope
    extra: dict[str, Any]  # the fields Vigil does not know, for the score event
    post_id: str
    user_id: str
    video_url: str | None
    image_url: str | None
    text: str | None
    language: str | None
    created_at: float
    received_at: float

    @property
    def media_url(self) -> str | None:
        return self.video_url or self.image_url


POST_FIELDS = ("post_id", "user_id", "created_at", "video_url", "image_url", "text", "language")


def parse_post(envelope: Envelope) -> PostMessage:
    """Validate a post; raises a :class:`BadMessage` naming the problem."""
    message = json_object(envelope)
    post_id, user_id = identifier(message, "post_id"), identifier(message, "user_id")
    video_url, image_url = optional_text(message, "video_url"), optional_text(message, "image_url")
    text = visible(optional_text(message, "text"))
    language = optional_text(message, "language")
    if video_url is None and image_url is None and text is None:
        raise MissingField("a post needs video_url, image_url or visible text")
    return PostMessage(envelope, extra_fields(message, POST_FIELDS), post_id, user_id,
                       video_url, image_url, text, language,
                       instant(message, "created_at", envelope), time.monotonic())


@dataclass(frozen=True, slots=True)
class ViewsMessage:
    """A ``posts.views`` count."""

    envelope: Envelope
    post_id: str
    views: int
    at: float  # epoch seconds


def parse_views(envelope: Envelope) -> ViewsMessage:
    """Validate a views event; raises a :class:`BadMessage` naming what is wrong."""
    message = json_object(envelope)
    post_id = identifier(message, "post_id")
    views = message.get("views")
    if views is None:
        raise MissingField("missing field 'views'")
    if isinstance(views, bool) or not isinstance(views, int):
        raise InvalidField(f"views must be an integer, not {str(views)[:50]!r}")
    if not 0 <= views <= MAX_VIEWS:
        raise InvalidField(f"views must be in 0..{MAX_VIEWS}, not {str(views)[:30]}")
    return ViewsMessage(envelope, post_id, views, instant(message, "at", envelope))


DECISION_KINDS = ("clip", "post")
DECISIONS = ("discard", "keep")


@dataclass(frozen=True, slots=True)
class DecisionMessage:
    """A ``review.decisions`` event: a moderator's decision on a clip or a post."""

    envelope: Envelope
    item_id: str
    kind: str
    decision: str
    moderator_id: str
    decided_at: float  # epoch seconds

    @property
    def positive(self) -> bool:
        """True when the moderator took the item down: what a verdict should have flagged."""
        return self.decision == "discard"


def parse_decision(envelope: Envelope) -> DecisionMessage:
    """Validate a moderator's decision; raises a :class:`BadMessage` naming what is wrong."""
    message = json_object(envelope)
    item_id = identifier(message, "item_id")
    kind, decision = identifier(message, "kind"), identifier(message, "decision")
    if kind not in DECISION_KINDS:
        raise InvalidField(f"kind must be one of {DECISION_KINDS}, not {kind[:50]!r}")
    if decision not in DECISIONS:
        raise InvalidField(f"decision must be one of {DECISIONS}, not {decision[:50]!r}")
    moderator_id = identifier(message, "moderator_id")
    # Required: the newest decision per item wins, so a decision without its own time
    # (which would take the record's, or now) could overrule any earlier one.
    if message.get("decided_at") in (None, ""):
        raise MissingField("missing field 'decided_at'")
    return DecisionMessage(envelope, item_id, kind, decision, moderator_id,
                           instant(message, "decided_at", envelope))
