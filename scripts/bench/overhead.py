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
from orchestrator.stores import iso_utc
from scripts import clips
from scripts.bench import stack
from scripts.bench.trivial import CLIP_SECONDS, SAMPLE_RATE_HZ, TrivialScorer

MODEL = "audio_trivial"
DISTINCT_CLIPS = 16


def build_trivial(store: Path, *, workers: int, batch_delay_ms: int) -> ArchiveSpec:
    spec = ArchiveSpec(name=MODEL, family="audio_nsfw", language="xx", workers=workers,
                       max_batch_delay_ms=batch_delay_ms, intra_op_threads=1)
    with tqdm([spec], desc="building the trivial archive", leave=False) as progress:
        package_model(spec, TrivialScorer().eval(), BuildOptions(export_dir=store), progress)
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


def run(workdir: Path, bootstrap: str, *, count: int, workers: int,
        batch_delay_ms: int, env: dict[str, str] | None = None,
        server_options: dict | None = None) -> dict:
    """Preload ``count`` messages, start the daemon, time it from ready to the last one."""
    store = workdir / "store-trivial"
    build_trivial(store, workers=workers, batch_delay_ms=batch_delay_ms)
    with stack.served(workdir, bootstrap, store=store, model=MODEL, topic_prefix="trivial",
                      env=env, preload=messages(count), server_options=server_options) as path:
        everything = path.processes()
        daemon = everything[0]
        daemon_before, total_before = stack.cpu_seconds([daemon]), stack.cpu_seconds(everything)
        started = time.monotonic()
        path.wait_handled(count, "overhead: trivial model")
        wall = time.monotonic() - started
        daemon_cpu = stack.cpu_seconds([daemon]) - daemon_before
        total_cpu = stack.cpu_seconds(everything) - total_before
        metrics = path.daemon.metrics()
    batches = stack.harness.metric_value(metrics, "vigil_batch_size_count")
    return {"messages": count, "clip_seconds": CLIP_SECONDS, "workers": workers,
            "batch_delay_ms": batch_delay_ms, "wall_s": wall, "clips_per_s": count / wall,
            "daemon_cpu_ms_per_clip": 1000 * daemon_cpu / count,
            "path_cpu_ms_per_clip": 1000 * total_cpu / count,
            "mean_batch": count / batches if batches else 0.0}
