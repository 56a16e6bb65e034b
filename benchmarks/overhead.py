"""The serving path's own ceiling: broker, daemon, TorchServe and database around a model
that costs nothing, so the highest sustained rate and the daemon's CPU per message show."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

from tqdm import tqdm

from modelzoo.build import BuildOptions, package_model
from modelzoo.manifest import ArchiveSpec
from orchestrator.clock import iso_utc
from scripts import clips
from benchmarks import stack
from benchmarks.trivial import CLIP_SECONDS, SAMPLE_RATE_HZ, TrivialScorer

MODEL = "audio_trivial"
DISTINCT_CLIPS = 16


def build_trivial(store: Path, *, workers: int, batch_delay_ms: int) -> ArchiveSpec:
    spec = ArchiveSpec(name=MODEL, family="audio_nsfw", languages=("*",), workers=workers,
                       max_batch_delay_ms=batch_delay_ms, intra_op_threads=1)
    with tqdm([spec], desc="building the trivial archive", leave=False) as progress:
        package_model(spec, TrivialScorer().eval(),
                      BuildOptions(export_dir=store, release=False), progress)
    return spec


def messages(count: int, *, prefix: str = "trivial") -> list[tuple[bytes, bytes]]:
    """``count`` valid 1 s WAV clip messages (a few distinct clips, each id unique)."""
    audio = [base64.b64encode(clips.clip("wav", seconds=CLIP_SECONDS, rate=SAMPLE_RATE_HZ,
                                         seed=seed)).decode() for seed in range(DISTINCT_CLIPS)]
    now = iso_utc()
    return [(f"{prefix}-{i}".encode(),
             json.dumps({"clip_id": f"{prefix}-{i}", "stream_id": f"s{i % 64}", "language": "xx",
                         "audio_b64": audio[i % DISTINCT_CLIPS], "created_at": now}).encode())
            for i in range(count)]


# How the daemon sends a batch to TorchServe (DESIGN.md: measure both, keep the faster).
REQUEST_MODES = {"one per batch": "true", "one per clip": "false"}


def run_modes(workdir: Path, bootstrap: str, *, count: int, warmup: int, workers: int,
              batch_delay_ms: int) -> dict:
    """:func:`run` once per request mode, each on its own topic and TorchServe."""
    rows = []
    for number, (mode, flag) in enumerate(REQUEST_MODES.items()):
        result = run(workdir, bootstrap, count=count, warmup=warmup, workers=workers,
                     batch_delay_ms=batch_delay_ms, prefix=f"trivial{number}",
                     env={"VIGIL_TORCHSERVE_BATCH_REQUESTS": flag})
        rows.append({"requests": mode, **result})
    return {"modes": rows}


def run(workdir: Path, bootstrap: str, *, count: int, workers: int,
        batch_delay_ms: int, warmup: int = 0, prefix: str = "trivial",
        env: dict[str, str] | None = None, server_options: dict | None = None) -> dict:
    """Preload ``warmup + count`` messages, start the daemon, and time the last ``count``:
    the first ``warmup`` let the JVM compile TorchServe's hot paths, as on a long-running
    server."""
    store = workdir / "store-trivial"
    build_trivial(store, workers=workers, batch_delay_ms=batch_delay_ms)
    with stack.served(workdir, bootstrap, store=store, model=MODEL, topic_prefix=prefix,
                      env=env, preload=messages(warmup + count, prefix=prefix),
                      server_options=server_options) as path:
        first = path.wait_handled(warmup, "overhead: warming up") if warmup else 0
        everything = path.processes()
        daemon = everything[0]
        daemon_before, total_before = stack.cpu_seconds([daemon]), stack.cpu_seconds(everything)
        started = time.monotonic()
        handled = path.wait_handled(warmup + count, "overhead: trivial model")
        wall = time.monotonic() - started
        timed = handled - first
        if not timed:
            raise RuntimeError("every clip was handled during the warm-up: time more of them")
        daemon_cpu = stack.cpu_seconds([daemon]) - daemon_before
        total_cpu = stack.cpu_seconds(everything) - total_before
        batches = path.batches()
    return {"messages": timed, "warmup_messages": warmup, "clip_seconds": CLIP_SECONDS,
            "workers": workers, "batch_delay_ms": batch_delay_ms, "wall_s": wall,
            "clips_per_s": timed / wall,
            "daemon_cpu_ms_per_clip": 1000 * daemon_cpu / timed,
            "path_cpu_ms_per_clip": 1000 * total_cpu / timed,
            "mean_batch": handled / batches if batches else 0.0}
