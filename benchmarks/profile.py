"""py-spy on a running daemon: its stacks while a benchmark times it, and where they spend.

py-spy samples from outside the process (``--nonblocking``: it never pauses the daemon), so
a profiled run costs the daemon almost nothing; the figures of the tuning log still come
from runs without it.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path


def py_spy() -> str:
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("--profile needs py-spy (pip install -e .[dev])")
    return found


@contextlib.contextmanager
def recorded(pid: int, out: Path | None) -> Iterator[None]:
    """Sample ``pid`` into ``out`` (collapsed stacks, one ``frame;frame count`` per line)
    until the block ends; does nothing when ``out`` is None."""
    if out is None:
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([py_spy(), "record", "--pid", str(pid), "--format", "raw",
                                "--nonblocking", "--rate", "250", "--output", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=60)
        if not out.exists():
            raise RuntimeError(f"py-spy wrote no profile: {errors.decode(errors='replace')}")


def hottest(collapsed: str, top: int = 12) -> list[tuple[str, float, float]]:
    """(function, % of samples on CPU in it, % with it on the stack) for the ``top``
    functions by own time, from collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        frames = [_function(frame) for frame in stack.split(";")]
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if not total:
        return []
    return [(name, 100 * samples / total, 100 * inclusive[name] / total)
            for name, samples in own.most_common(top)]


def _function(frame: str) -> str:
    """``name (file.py:line)`` → ``name (file.py)``: one row per function, not per line."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({Path(path).name})" if path else name
