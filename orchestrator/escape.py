"""Text from a message made safe for places where a control character forges structure: a
line break in a log line starts a forged entry, one in a header value a forged header, and
bidirectional overrides make a reader see other text than was written."""

from __future__ import annotations

import logging

_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES.update({code: f"\\u{code:04x}" for code in (
    0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))})


def escape_controls(text: str) -> str:
    """``text`` with control, line-separator and bidirectional-override characters written
    as escapes (``\\x0a``, ``\\u202e``); everything else unchanged."""
    return text.translate(_ESCAPES)


class EscapingFormatter(logging.Formatter):
    """A formatter whose lines hold no control characters, whatever a message interpolated
    (a URL, an error text); a traceback keeps its own line breaks."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return escape_controls(super().formatMessage(record))
