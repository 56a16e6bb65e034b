"""The serving path's own ceiling: broker, daemon, TorchServe and database around a model
that costs nothing, so the highest sustained rate and the daemon's CPU per message show,
next to TorchServe alone with the same clips (:mod:`benchmarks.alone`)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

from tqdm import tqdm

from benchmarks import alone, profile, stack
from benchmarks.trivial import CLIP_SECONDS, SAMPLE_RATE_HZ, TrivialScorer
from modelzoo.build import BuildOptions, package_model
from modelzoo.manifest import ArchiveSpec
from orchestrator.clock import iso_utc
from orchestrator.config import RuntimeConfig
from scripts import clips

MODEL = "audio_trivial"
DISTINCT_CLIPS = 16


def build_trivial(store: Path, *, workers: int, batch_delay_ms: int) -> ArchiveSpec:
    # One-request-per-batch mode hands a worker up to 8 x 8 clips: decode_limit_s 1 keeps
    # that batch (64 s at worst) inside the daemon's timeout (stack.served).
    spec = ArchiveSpec(name=MODEL, family="audio_nsfw", languages=("*",), workers=workers,
                       max_batch_delay_ms=batch_delay_ms, intra_op_threads=1,
                       response_timeout_s=600, decode_limit_s=1)
    with tqdm([spec], desc="building the trivial archive", leave=False) as progress:
        package_model(spec, TrivialScorer().eval(),
                      BuildOptions(export_dir=store, release=False), progress)
    return spec


def audio_clips() -> list[bytes]:
    """The few distinct 1 s WAV clips every message carries one of."""
    return [clips.clip("wav", seconds=CLIP_SECONDS, rate=SAMPLE_RATE_HZ, seed=seed)
            for seed in range(DISTINCT_CLIPS)]


def messages(count: int, *, prefix: str = "trivial") -> list[tuple[bytes, bytes]]:
    """``count`` valid 1 s WAV clip messages (a few distinct clips, each id unique)."""
    audio = [base64.b64encode(clip).decode() for clip in audio_clips()]
    now = iso_utc()
    return [(f"{prefix}-{i}".encode(),
             json.dumps({"clip_id": f"{prefix}-{i}", "stream_id": f"s{i % 64}", "language": "xx",
                         "audio_b64": audio[i % DISTINCT_CLIPS], "created_at": now}).encode())
            for i in range(count)]


# How the daemon sends a batch to TorchServe (DESIGN.md: measure both, keep the faster).
BATCH_REQUESTS = "VIGIL_TORCHSERVE_BATCH_REQUESTS"
REQUEST_MODES = {"one per batch": "true", "one per clip": "false"}


def run_modes(workdir: Path, bootstrap: str, *, count: int, warmup: int, workers: int,
              batch_delay_ms: int, profiles: Path | None = None) -> dict:
    """:func:`run` once per request mode, each on its own topic and TorchServe; with
    ``profiles``, the daemon's py-spy stacks of each timed run are saved there."""
    rows = []
    for number, (mode, flag) in enumerate(REQUEST_MODES.items()):
        result = run(workdir, bootstrap, count=count, warmup=warmup, workers=workers,
                     batch_delay_ms=batch_delay_ms, prefix=f"trivial{number}",
                     env={BATCH_REQUESTS: flag},
                     profile_to=profiles / f"daemon-{mode.replace(' ', '-')}.txt"
                     if profiles else None)
        rows.append({"requests": mode, **result})
    return {"modes": rows}


def run(workdir: Path, bootstrap: str, *, count: int, workers: int,
        batch_delay_ms: int, warmup: int = 0, prefix: str = "trivial",
        env: dict[str, str] | None = None, server_options: dict | None = None,
        profile_to: Path | None = None) -> dict:
    """Preload ``warmup + count`` messages, start the daemon, and time the last ``count``:
    the first ``warmup`` let the JVM compile TorchServe's hot paths, as on a long-running
    server. ``profile_to``: where py-spy writes the daemon's stacks of the timed part."""
    store = workdir / "store-trivial"
    build_trivial(store, workers=workers, batch_delay_ms=batch_delay_ms)
    with stack.served(workdir, bootstrap, store=store, model=MODEL, topic_prefix=prefix,
                      env=env, preload=messages(warmup + count, prefix=prefix),
                      server_options=server_options) as path:
        first = path.wait_handled(warmup, "overhead: warming up") if warmup else 0
        everything = path.processes()
        daemon = everything[0]
        daemon_before, total_before = stack.cpu_seconds([daemon]), stack.cpu_seconds(everything)
        started, machine = time.monotonic(), stack.MachineBusy()
        with profile.recorded(daemon.pid, profile_to):
            handled = path.wait_handled(warmup + count, "overhead: trivial model")
        wall = time.monotonic() - started
        timed = handled - first
        if not timed:
            raise RuntimeError("every clip was handled during the warm-up: time more of them")
        machine_busy = machine.fraction()
        daemon_cpu = stack.cpu_seconds([daemon]) - daemon_before
        total_cpu = stack.cpu_seconds(everything) - total_before
        batches = path.batches()
        # The same server, warm, the daemon idle: the ceiling without Vigil around it.
        ceiling = alone.run(path, MODEL, audio_clips(), count,
                            batch_requests=(env or {}).get(BATCH_REQUESTS) == "true",
                            in_flight=RuntimeConfig().max_in_flight)
    return {"messages": timed, "warmup_messages": warmup, "clip_seconds": CLIP_SECONDS,
            "workers": workers, "batch_delay_ms": batch_delay_ms, "wall_s": wall,
            "clips_per_s": timed / wall,
            "daemon_cpu_ms_per_clip": 1000 * daemon_cpu / timed,
            "path_cpu_ms_per_clip": 1000 * total_cpu / timed,
            "daemon_cpu_share": daemon_cpu / total_cpu,
            # Near 1: the cores are saturated, broker and load generator included.
            "machine_busy": machine_busy,
            "mean_batch": handled / batches if batches else 0.0,
            "torchserve_alone": ceiling, "vs_alone": (timed / wall) / ceiling["clips_per_s"],
            **({"profile": str(profile_to)} if profile_to else {})}
