"""Hushing libraries that talk on channels Vigil cannot configure.

ONNX Runtime's quantizer and open_clip log through the root logger, and NNCF draws its own
progress bars on stdout with no switch to turn them off. During a build those lines are
noise (the build shows its own progress and prints what it chose), so the calls that make
them run inside these contexts.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def root_logger_at(level: int) -> Iterator[None]:
    """Raise the root logger to ``level`` for the duration; named loggers are untouched."""
    root = logging.getLogger()
    previous = root.level
    root.setLevel(max(level, previous))
    try:
        yield
    finally:
        root.setLevel(previous)


@contextlib.contextmanager
def no_stdout() -> Iterator[None]:
    """Swallow what is printed to stdout (a library's progress bars) for the duration."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
