"""The orchestrator's errors. Foreign exceptions are translated where they are caught.

    VigilError
    ├── BadMessage                 never retried: the message goes to the dead-letter topic
    │   ├── InvalidJson
    │   ├── MissingField
    │   ├── InvalidField
    │   ├── UnknownLanguage        no model for the language and no fallback configured
    │   ├── UnknownPost            a views event for a post the posts table does not have
    │   ├── MediaNotAllowed        scheme or host outside the allow-list
    │   ├── MediaTooLarge
    │   ├── MediaUnavailable       the URL answered 4xx, or the file is missing
    │   └── UndecodableMedia       the model's handler could not decode it (4xx)
    ├── BadModelResponse           a model answer that is not a finite score in [0, 1] with a
    │                              known label, or a non-finite embedding: never written
    ├── TransientError             retried with backoff, then dead-lettered
    │   ├── ModelUnavailable       connection refused, 5xx, 503/507 (also pauses intake)
    │   ├── ModelTimeout
    │   └── MediaFetchFailed       timeout, connection error or 5xx from the media host
    └── AuthError                  TorchServe refused the key even after re-reading it

Each class's ``reason`` is what dead letters and metrics are labelled with.
"""

from __future__ import annotations


class VigilError(Exception):
    reason = "error"


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


class TransientError(VigilError):
    reason = "transient"


class ModelUnavailable(TransientError):
    reason = "model_unavailable"


class ModelTimeout(TransientError):
    reason = "model_timeout"


class MediaFetchFailed(TransientError):
    reason = "media_fetch_failed"


class AuthError(VigilError):
    reason = "auth"
