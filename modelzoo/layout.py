"""``layout: auto``: how many workers, each with how many threads, serve an engine fastest on
the machine that builds it.

Each layout is timed as TorchServe would run it: ``workers`` processes at once, each
loading the packaged artifact the way the handler does (``handlers/runtime.py``, with its
thread count) and running the same batch. Memory bandwidth and caches are shared, as they
are when serving, so the figure is the layout's throughput, not a per-thread estimate. The
first worker also scores the check inputs, which must match what the checked engine gave:
a thread count that changes the scores beyond summation order fails its layout.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from handlers import runtime

TIMED_RUNS = 3
# Threads change only the order of sums: more than this is another computation.
MAX_LAYOUT_DIFFERENCE = 1e-3
CHILD_TIMEOUT_S = 600


class LayoutError(RuntimeError):
    """No layout could be timed, or none scored like the checked engine."""


@dataclass(frozen=True)
class Layout:
    workers: int
    threads: int

    @property
    def label(self) -> str:
        return f"{self.workers} x {self.threads}"


@dataclass(frozen=True)
class LayoutTrial:
    layout: Layout
    clips_per_s: float | None
    max_difference: float | None
    error: str | None = None

    def row(self) -> dict:
        return {**asdict(self.layout), "clips_per_s": self.clips_per_s,
                "max_difference": self.max_difference,
                **({"error": self.error} if self.error else {})}


def layouts(cores: int) -> list[Layout]:
    """Every split of ``cores`` into workers of 1, 2, 4, ... threads (and all in one)."""
    threads = sorted({t for t in (1, 2, 4, 8, cores) if t <= cores and cores % t == 0})
    return [Layout(cores // t, t) for t in threads]


def _worker(path: str, precision: str, threads: int, batch: list[np.ndarray],
            checks: list[list[np.ndarray]], runs: int, barrier, results, index: int) -> None:
    try:
        torch.set_num_threads(threads)
        engine = runtime.load(path, device=torch.device("cpu"), precision=precision,
                              threads=threads).run
        inputs = [torch.from_numpy(part) for part in batch]
        with torch.inference_mode():
            engine(*inputs)  # warm-up: the first run compiles
            outputs = ([engine(*(torch.from_numpy(p) for p in check)).float().numpy()
                        for check in checks] if index == 0 else [])
            barrier.wait(timeout=CHILD_TIMEOUT_S)
            started = time.perf_counter()
            for _ in range(runs):
                engine(*inputs)
            results.put((index, time.perf_counter() - started, outputs, None))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as this layout's error
        barrier.abort()
        results.put((index, None, [], f"{type(exc).__name__}: {exc}"[:300]))


def _as_numpy(inputs) -> list[np.ndarray]:
    parts = inputs if isinstance(inputs, tuple) else (inputs,)
    return [part.detach().cpu().numpy() for part in parts]


def time_layout(layout: Layout, artifact: Path, precision: str, batch, checks: Sequence,
                reference: Sequence[np.ndarray], runs: int = TIMED_RUNS) -> LayoutTrial:
    """Clips per second of ``layout`` on ``batch``, and how far its first worker's outputs
    on ``checks`` are from ``reference`` (the checked engine's)."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(layout.workers), context.Queue()
    arguments = (str(artifact), precision, layout.threads, _as_numpy(batch),
                 [_as_numpy(check) for check in checks], runs, barrier, results)
    processes = [context.Process(target=_worker, args=(*arguments, index), daemon=True)
                 for index in range(layout.workers)]
    for process in processes:
        process.start()
    try:
        answers = [results.get(timeout=CHILD_TIMEOUT_S) for _ in processes]
    except queue.Empty:
        return LayoutTrial(layout, None, None, "a worker did not answer in time")
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    errors = [error for *_, error in answers if error]
    if errors:
        return LayoutTrial(layout, None, None, errors[0])
    rows = _as_numpy(batch)[0].shape[0]
    slowest = max(seconds for _, seconds, _, _ in answers)
    outputs = next(outputs for index, _, outputs, _ in answers if index == 0)
    difference = max(float(np.abs(out - ref).max()) for out, ref in zip(outputs, reference))
    if difference > MAX_LAYOUT_DIFFERENCE:
        return LayoutTrial(layout, None, difference,
                           f"scores moved {difference:.2e} from the checked engine's")
    return LayoutTrial(layout, layout.workers * runs * rows / slowest, difference)


def choose(artifact: Path, precision: str, batch, checks: Sequence, reference: Sequence,
           cores: int | None = None, on_trial=None) -> tuple[Layout, list[LayoutTrial]]:
    """Time every layout of this machine's cores; the fastest that scores like the checked
    engine, and every trial. Raises :class:`LayoutError` when none does."""
    trials = []
    for layout in layouts(cores or runtime.available_cores()):
        trials.append(time_layout(layout, artifact, precision, batch, checks, reference))
        if on_trial is not None:
            on_trial(trials[-1])
    passing = [trial for trial in trials if trial.clips_per_s is not None]
    if not passing:
        raise LayoutError("no layout could be timed: "
                          + "; ".join(f"{t.layout.label}: {t.error}" for t in trials))
    return max(passing, key=lambda trial: trial.clips_per_s).layout, trials
