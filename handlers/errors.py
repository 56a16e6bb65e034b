"""Per-request errors a handler reports with its own HTTP status, leaving the batch intact."""

from __future__ import annotations


class BadInput(ValueError):
    """The request body cannot be scored: it gets ``status`` (4xx) and a readable message."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class NoAudioStream(BadInput):
    """The container holds no audio track (a silent video): an error for audio models,
    a missing modality for the VRT audio extractor."""


class OverLimit(BadInput):
    """The media passes one of the archive's limits: pixels, duration, decode time (413)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=413)


class MediaTooLong(OverLimit):
    """The media runs longer than the archive's configured limit."""
