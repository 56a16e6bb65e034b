"""The orchestrator's errors. Foreign exceptions are translated where they are caught.

    VigilError
    ├── BadMessage                 the message itself is wrong: dead-lettered at once
    │   ├── InvalidJson
    │   ├── MissingField
    │   ├── InvalidField
    │   ├── UnknownLanguage        no model for the language and no fallback configured
    │   ├── UnknownPost            a views event for a post the posts table does not have
    │   ├── MediaNotAllowed        scheme, host, port or resolved address outside the allow-list
    │   ├── MediaTooLarge          over a size, pixel, duration or decode-time limit
    │   ├── MediaUnavailable       the URL answered 4xx, or the file is missing
    │   └── UndecodableMedia       the model's handler could not decode it (4xx), including
    │                              non-finite audio samples
    ├── BadModelResponse           a model answer that is not a finite score in [0, 1] with a
    │                              known label, or a non-finite embedding: never written
    ├── DeliveryError              the broker refused a record for good (too large, not allowed)
    ├── StoreError                 the database refused a statement for good (a constraint)
    ├── ConfigError                a setting is missing, unknown or out of range (start-up)
    ├── UnknownVersion             a model or version the catalogue does not have
    ├── RolloutConflict            a rollout change that cannot be made: the rollout is not
    │                              running, its candidate is live, or it changed meanwhile
    ├── AuthError                  TorchServe refused the key even after re-reading it
    └── TransientError             retried with backoff within a time budget
        ├── ModelUnavailable       connection refused or lost, 503/507 (also pauses intake)
        ├── ModelTimeout           retried once only, and never pauses intake: the input
        │                          itself may be what is slow
        ├── MediaFetchFailed       timeout, connection error or 5xx from the media host
        ├── BrokerUnavailable      the broker did not acknowledge in time (also pauses intake)
        └── StoreUnavailable       the database is unreachable (also pauses intake)

Each class's ``reason`` is what dead letters and metrics are labelled with; anything that is
not a :class:`VigilError` is dead-lettered as ``internal_error``. ``attempts`` is how many
times the failing operation ran (set by :class:`~orchestrator.flow.retry.RetryPolicy`).
"""

from __future__ import annotations

INTERNAL_ERROR = "internal_error"


class VigilError(Exception):
    reason = "error"
    attempts = 1


def reason_of(error: BaseException) -> str:
    """The dead-letter reason ``error`` is filed under."""
    return error.reason if isinstance(error, VigilError) else INTERNAL_ERROR


def attempts_of(error: BaseException) -> int:
    """How many times the operation that raised ``error`` was tried."""
    return int(getattr(error, "attempts", 1))


class BadMessage(VigilError):
    reason = "bad_message"


class InvalidJson(BadMessage):
    reason = "invalid_json"


class MissingField(BadMessage):
    reason = "missing_field"


class InvalidField(BadMessage):
    reason = "invalid_field"


class UnknownLanguage(BadMessage):
    reason = "unknown_language"


class UnknownPost(BadMessage):
    reason = "unknown_post"


class MediaNotAllowed(BadMessage):
    reason = "media_not_allowed"


class MediaTooLarge(BadMessage):
    reason = "media_too_large"


class MediaUnavailable(BadMessage):
    reason = "media_unavailable"


class UndecodableMedia(BadMessage):
    reason = "undecodable_media"


class BadModelResponse(VigilError):
    reason = "bad_model_response"


class DeliveryError(VigilError):
    reason = "delivery_refused"


class StoreError(VigilError):
    reason = "store_refused"


class ConfigError(VigilError, ValueError):
    reason = "config"


class UnknownVersion(VigilError, LookupError):
    reason = "unknown_version"


class RolloutConflict(VigilError):
    reason = "rollout_conflict"


class AuthError(VigilError):
    reason = "auth"


class TransientError(VigilError):
    reason = "transient"
    # How many attempts at most (None: as many as the retry budget allows), and whether
    # the failure says a dependency is down, so that intake pauses until it is back.
    max_attempts: int | None = None
    outage = True


class ModelUnavailable(TransientError):
    reason = "model_unavailable"


class ModelTimeout(TransientError):
    reason = "model_timeout"
    # A handler answers a slow input with its own 413 well inside the request timeout, so
    # a timeout is an overloaded server or an input that slips past a limit: one retry
    # covers the first, and the second must not hold up every other message.
    max_attempts = 2
    outage = False


class MediaFetchFailed(TransientError):
    reason = "media_fetch_failed"


class BrokerUnavailable(TransientError):
    reason = "broker_unavailable"


class StoreUnavailable(TransientError):
    reason = "store_unavailable"
