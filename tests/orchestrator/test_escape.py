"""Text from a message cannot forge a log line or a header line."""

import logging
import sys

from orchestrator.escape import EscapingFormatter, escape_controls


def test_control_and_bidirectional_characters_are_written_as_escapes():
    assert escape_controls("a\nb\r\x00\x1b[31m\u202eevil\u2028") == (
        "a\\x0ab\\x0d\\x00\\x1b[31m\\u202eevil\\u2028")
    assert escape_controls("नमस्ते ok: 'x'") == "नमस्ते ok: 'x'"


def test_a_log_line_stays_one_line_whatever_it_interpolates():
    formatter = EscapingFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("orchestrator.flow.spine", logging.INFO, __file__, 1,
                               "dead letter: %s", ("x\nCRITICAL forged",), None)
    assert formatter.format(record) == "INFO dead letter: x\\x0aCRITICAL forged"
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    lines = formatter.format(record).splitlines()
    assert lines[0] == "INFO dead letter: x\\x0aCRITICAL forged" and lines[1].startswith(
        "Traceback")  # a traceback keeps its own lines
