"""What arrives on the input topics, as typed messages, and how each is parsed and checked.

A parse function takes an :class:`Envelope` and returns its typed message, or raises a
:class:`~orchestrator.errors.BadMessage` naming what is wrong. Values are decoded with
orjson: it refuses nesting past 1,024 levels with a decode error (the standard library
raises ``RecursionError``), and NaN, Infinity and lone surrogates, none of which could be
re-emitted as valid JSON. Unknown fields are kept, for the events that re-emit them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from orchestrator.catalogue import ModelEntry
from orchestrator.clock import parse_iso
from orchestrator.errors import InvalidField, InvalidJson, MissingField

Partition = tuple[str, int]
MAX_ID_CHARS = 256  # ids are keys in the database and on the topics


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


def json_object(envelope: Envelope) -> dict[str, Any]:
    """The value as a JSON object whose fields can be re-emitted; else :class:`InvalidJson`."""
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
    return message


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
    if len(value) > MAX_ID_CHARS or not value.isprintable():
        raise InvalidField(f"field {name!r} must be 1..{MAX_ID_CHARS} printable characters")
    return value


def optional_text(message: Mapping[str, Any], name: str) -> str | None:
    """An optional string field (None when absent, null or empty)."""
    value = message.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidField(f"field {name!r} must be a string")
    if "\x00" in value:
        raise InvalidField(f"field {name!r} must not hold NUL characters")
    return value


def instant(message: Mapping[str, Any], name: str, envelope: Envelope) -> float:
    """An ISO 8601 field as epoch seconds; the record's timestamp (or now) when absent."""
    stamp = message.get(name)
    if stamp is None or stamp == "":
        return envelope.timestamp_ms / 1000 if envelope.timestamp_ms else time.time()
    if not isinstance(stamp, str):
        raise InvalidField(f"{name} must be an ISO 8601 string")
    try:
        return parse_iso(stamp)
    except ValueError as exc:
        raise InvalidField(f"{name} is not ISO 8601: {stamp[:50]!r}") from exc


@dataclass(frozen=True, slots=True)
class ClipMessage:
    """A ``livestream.audio`` clip, routed to the model of its language."""

    envelope: Envelope
    fields: dict[str, Any]  # every field as received, for the verdict event
    clip_id: str
    stream_id: str
    language: str
    model: ModelEntry
    audio_url: str | None
    audio_b64: str | None
    created_at: float  # epoch seconds
    received_at: float  # monotonic seconds


def parse_clip(envelope: Envelope, route: Callable[[str], ModelEntry]) -> ClipMessage:
    """Validate a clip message and route it; raises a :class:`BadMessage`."""
    message = json_object(envelope)
    clip_id, stream_id = identifier(message, "clip_id"), identifier(message, "stream_id")
    language = identifier(message, "language")
    audio_url, audio_b64 = optional_text(message, "audio_url"), optional_text(message, "audio_b64")
    if audio_url is None and audio_b64 is None:
        raise MissingField("one of 'audio_url' or 'audio_b64' is required")
    return ClipMessage(envelope, message, clip_id, stream_id, language, route(language),
                       audio_url, audio_b64, instant(message, "created_at", envelope),
                       time.monotonic())


@dataclass(frozen=True, slots=True)
class PostMessage:
    """A ``posts.created`` post: media (a video or an image) and/or text."""

    envelope: Envelope
    fields: dict[str, Any]
    post_id: str
    user_id: str
    video_url: str | None
    image_url: str | None
    text: str | None
    created_at: float
    received_at: float

    @property
    def media_url(self) -> str | None:
        return self.video_url or self.image_url


def parse_post(envelope: Envelope) -> PostMessage:
    """Validate a post; raises a :class:`BadMessage` naming the problem."""
    message = json_object(envelope)
    post_id, user_id = identifier(message, "post_id"), identifier(message, "user_id")
    video_url, image_url = optional_text(message, "video_url"), optional_text(message, "image_url")
    text = optional_text(message, "text")
    if text is not None and not text.strip():
        text = None
    if video_url is None and image_url is None and text is None:
        raise MissingField("a post needs video_url, image_url or text")
    return PostMessage(envelope, message, post_id, user_id, video_url, image_url, text,
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
    if views < 0:
        raise InvalidField(f"views must not be negative: {views}")
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
    return DecisionMessage(envelope, item_id, kind, decision,
                           instant(message, "decided_at", envelope))
