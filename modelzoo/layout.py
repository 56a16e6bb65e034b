"""``layout: auto``: how many workers, each with how many threads, running a batch in chunks
of how many rows, serve an engine fastest on the machine that builds it.

Each split of the cores is timed as TorchServe would run it: ``workers`` processes at once,
each loading the packaged artifact the way the handler does (``handlers/runtime.py``, with
its thread count) and running the same batch of 8, whole and in chunks of 1, 2 and 4 rows
(the handler's ``max_rows``: TorchServe still batches requests, the model sees fewer rows at
a time, which some engines run faster per row). Memory bandwidth and caches are shared, as
they are when serving, so the figure is the layout's throughput, not a per-thread estimate.
The first worker also scores the check inputs, which must match what the checked engine
gave: a thread count that changes the scores beyond summation order fails its split.
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
from handlers.batch_handler import run_in_chunks

TIMED_RUNS = 3
CHUNKS = (1, 2, 4)  # rows per call tried besides the whole batch
# Chunks within this share of the fastest are not worth more calls per batch.
CHUNK_MARGIN = 0.05
# Threads change only the order of sums: more than this is another computation.
MAX_LAYOUT_DIFFERENCE = 1e-3
CHILD_TIMEOUT_S = 600


class LayoutError(RuntimeError):
    """No layout could be timed, or none scored like the checked engine."""


@dataclass(frozen=True)
class Layout:
    workers: int
    threads: int
    rows: int = 0  # the model's rows per call (the handler's max_rows); 0: the whole batch

    @property
    def label(self) -> str:
        chunks = f", {self.rows} row(s) per call" if self.rows else ""
        return f"{self.workers} x {self.threads}{chunks}"


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
            checks: list[list[np.ndarray]], chunks: list[int], runs: int, barrier, results,
            index: int) -> None:
    try:
        torch.set_num_threads(threads)
        engine = runtime.load(path, device=torch.device("cpu"), precision=precision,
                              threads=threads).run
        inputs = [torch.from_numpy(part) for part in batch]
        whole = len(batch[0])
        seconds = {}
        with torch.inference_mode():
            for rows in chunks:
                run_in_chunks(engine, inputs, rows or whole)  # warm-up: a new shape may compile
            outputs = ([engine(*(torch.from_numpy(p) for p in check)).float().numpy()
                        for check in checks] if index == 0 else [])
            for rows in chunks:
                barrier.wait(timeout=CHILD_TIMEOUT_S)
                started = time.perf_counter()
                for _ in range(runs):
                    run_in_chunks(engine, inputs, rows or whole)
                seconds[rows] = time.perf_counter() - started
        results.put((index, seconds, outputs, None))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as this split's error
        barrier.abort()
        results.put((index, {}, [], f"{type(exc).__name__}: {exc}"[:300]))


def _as_numpy(inputs) -> list[np.ndarray]:
    parts = inputs if isinstance(inputs, tuple) else (inputs,)
    return [part.detach().cpu().numpy() for part in parts]


def _answers(processes: list, results) -> list[tuple]:
    """One answer per worker; raises :class:`LayoutError` when a worker dies without one
    (an engine that crashes its process) or none comes within ``CHILD_TIMEOUT_S``."""
    answers, deadline = [], time.monotonic() + CHILD_TIMEOUT_S
    while len(answers) < len(processes):
        try:
            answers.append(results.get(timeout=1))
        except queue.Empty:
            dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if dead:
                raise LayoutError(f"a worker died (exit code {dead[0]})") from None
            if time.monotonic() > deadline:
                raise LayoutError("a worker did not answer in time") from None
    return answers


def time_split(split: Layout, artifact: Path, precision: str, batch, checks: Sequence,
               reference: Sequence[np.ndarray], runs: int = TIMED_RUNS) -> list[LayoutTrial]:
    """Clips per second of ``split``'s workers x threads on ``batch``, whole and in chunks
    of :data:`CHUNKS` rows (one trial each), and how far its first worker's outputs on
    ``checks`` are from ``reference`` (the checked engine's)."""
    rows = _as_numpy(batch)[0].shape[0]
    chunks = [0, *(size for size in CHUNKS if size < rows)]
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(split.workers), context.Queue()
    arguments = (str(artifact), precision, split.threads, _as_numpy(batch),
                 [_as_numpy(check) for check in checks], chunks, runs, barrier, results)
    processes = [context.Process(target=_worker, args=(*arguments, index), daemon=True)
                 for index in range(split.workers)]
    for process in processes:
        process.start()
    try:
        answers = _answers(processes, results)
    except LayoutError as error:
        return [LayoutTrial(split, None, None, str(error))]
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    errors = [error for *_, error in answers if error]
    if errors:
        return [LayoutTrial(split, None, None, errors[0])]
    outputs = next(outputs for index, _, outputs, _ in answers if index == 0)
    difference = max(float(np.abs(out - ref).max()) for out, ref in zip(outputs, reference))
    if difference > MAX_LAYOUT_DIFFERENCE:
        return [LayoutTrial(split, None, difference,
                            f"scores moved {difference:.2e} from the checked engine's")]
    return [LayoutTrial(Layout(split.workers, split.threads, chunk),
                        split.workers * runs * rows / max(s[chunk] for _, s, _, _ in answers),
                        difference)
            for chunk in chunks]


def choose(artifact: Path, precision: str, batch, checks: Sequence, reference: Sequence,
           cores: int | None = None, on_trial=None) -> tuple[Layout, list[LayoutTrial]]:
    """Time every layout of this machine's cores; the fastest that scores like the checked
    engine (of those within :data:`CHUNK_MARGIN` of it, the one with the fewest calls per
    batch), and every trial. Raises :class:`LayoutError` when none does."""
    trials = []
    for split in layouts(cores or runtime.available_cores()):
        for trial in time_split(split, artifact, precision, batch, checks, reference):
            trials.append(trial)
            if on_trial is not None:
                on_trial(trial)
    passing = [trial for trial in trials if trial.clips_per_s is not None]
    if not passing:
        raise LayoutError("no layout could be timed: "
                          + "; ".join(f"{t.layout.label}: {t.error}" for t in trials))
    fastest = max(trial.clips_per_s for trial in passing)
    near = [trial for trial in passing if trial.clips_per_s >= fastest * (1 - CHUNK_MARGIN)]
    return max(near, key=lambda t: (t.layout.rows or float("inf"), t.clips_per_s)).layout, trials
