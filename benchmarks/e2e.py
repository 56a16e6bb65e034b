"""End to end, side by side: the naive baseline vs Vigil on the same clips, broker and model.

The same 20 s FLAC clips go to each path's own topic on one broker, stamped ``created_at``
when produced: livestream-like clips (``benchmarks/livestream.py``: generated speech,
silence, room tone, hum, noise, music). The baseline (``benchmarks/baseline.py``) takes one message at a time with the
eager model in-process; Vigil runs ``vigil run audio`` against TorchServe with the traced
archive (batches of 8). Same architecture and weights (the archive's seed). CPU is user +
system time of every process of the path, from ready to done.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
from tqdm import tqdm

from benchmarks import livestream, stack
from benchmarks.load import latencies
from modelzoo.build import BuildOptions, build_one, seed_for
from modelzoo.manifest import ArchiveSpec
from orchestrator.clock import iso_utc
from scripts import clips, harness

MODEL = "audio_nsfw_bench"


def make_clips(count: int) -> list[dict]:
    """The clip messages both paths get (without ``created_at``, stamped when sent), each
    with the kind of clip it is."""
    with tqdm(total=count, desc="generating 20 s livestream-like clips", unit="clip",
              leave=False) as progress:
        made = livestream.mix(count, progress=progress)
    return [{"clip_id": f"bench-{index}", "stream_id": f"s{index % 4}", "language": "hi",
             "kind": clip.kind, "positive": clip.positive, "audio_b64": base64.b64encode(
                 clips.encode(clip.samples[:, None], livestream.SAMPLE_RATE_HZ, "flac")).decode()}
            for index, clip in enumerate(made)]


def stamped(messages: list[dict]) -> list[tuple[bytes, bytes]]:
    now = iso_utc()
    return [(m["clip_id"].encode(), json.dumps({**m, "created_at": now}).encode())
            for m in messages]


def verdicts(bootstrap: str, topic: str, count: int) -> dict[str, dict]:
    events = (json.loads(m.value()) for m in
              harness.read_topic(bootstrap, topic, expect=count, timeout_s=120))
    return {event["clip_id"]: event for event in events}


def run_baseline(workdir: Path, bootstrap: str, messages: list[dict], *, size: str,
                 threads: int, device: str) -> dict:
    topics = harness.Topics(input="baseline.audio", output="baseline.verdicts", partitions=1)
    topics.create(bootstrap)
    harness.step(f"baseline: one message at a time, eager wav2vec2-{size} in-process")
    command = [sys.executable, "-m", "benchmarks.baseline", "--bootstrap", bootstrap,
               "--topic", topics.input, "--output-topic", topics.output,
               "--database", str(workdir / "baseline.db"), "--size", size,
               "--seed", str(seed_for(MODEL)), "--model-name", MODEL,
               "--count", str(len(messages)), "--threads", str(threads), "--device", device]
    process = psutil.Popen(command, stdout=subprocess.PIPE, text=True)
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError("the baseline did not start")
    cpu_before = stack.cpu_seconds([process])
    started = time.monotonic()
    harness.produce(bootstrap, topics.input, stamped(messages))
    cpu = cpu_before
    with tqdm(total=len(messages), desc="baseline", unit="clip", leave=False) as progress:
        while process.poll() is None:
            cpu = max(cpu, stack.cpu_seconds([process]))
            time.sleep(0.5)
        progress.update(len(messages))
    wall = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(f"baseline exited with {process.returncode}")
    return {"wall_s": wall, "cpu_s": cpu - cpu_before,
            "events": verdicts(bootstrap, topics.output, len(messages))}


def build_archive(store: Path, *, size: str, workers: int, threads: int, batch_delay_ms: int,
                  engine: str, precision: str, energy_gate_dbfs: float | None = None,
                  layout: str = "manifest", max_rows: int = 0,
                  screen: dict | None = None) -> ArchiveSpec:
    """Build the bench archive (``screen``: a cascade's screen, as the manifest names one);
    returns its spec as packaged (with ``layout="auto"``, the workers x threads and rows per
    call the build chose)."""
    options = {key: value for key, value in (("energy_gate_dbfs", energy_gate_dbfs),
                                             ("max_rows", max_rows), ("screen", screen))
               if value}
    spec = ArchiveSpec(name=MODEL, family="audio_nsfw", languages=("*",), workers=workers,
                       batch_size=8, max_batch_delay_ms=batch_delay_ms, response_timeout_s=600,
                       intra_op_threads=threads, engine=engine, precision=precision,
                       options=options, layout=layout)
    with tqdm([spec], desc=f"building the {engine} {precision} archive",
              leave=False) as progress:
        built = build_one(spec, BuildOptions(export_dir=store, size=size,
                                             check_batch_sizes=(2,),
                                             tolerance=1e-4 if precision == "fp32" else 0.05),
                          progress)
    return built.spec


def run_vigil(path: stack.Served, messages: list[dict]) -> dict:
    processes = path.processes()
    cpu_before = stack.cpu_seconds(processes)
    started = time.monotonic()
    harness.produce(path.bootstrap, path.topics.input, stamped(messages))
    path.wait_handled(len(messages), "Vigil")
    wall = time.monotonic() - started
    cpu = stack.cpu_seconds(processes) - cpu_before
    return {"wall_s": wall, "cpu_s": cpu,
            "events": verdicts(path.bootstrap, path.topics.output, len(messages))}


def summarize(name: str, run: dict) -> dict:
    count = len(run["events"])
    return {"path": name, "clips": count, "wall_s": round(run["wall_s"], 2),
            "clips_per_s": count / run["wall_s"], "cpu_s_per_clip": run["cpu_s"] / count,
            **latencies(list(run["events"].values()))}


def compare(baseline: dict, vigil: dict, count: int, tolerance: float,
            name: str = "Vigil") -> dict:
    """Both paths scored every clip, and the clips Vigil's model scored (not its energy
    gate or screen) within ``tolerance`` of each other: the honest check."""
    expected = {f"bench-{i}" for i in range(count)}
    missing = sorted((expected - set(vigil["events"])) | (expected - set(baseline["events"])))
    common = set(baseline["events"]) & set(vigil["events"])
    gated = {c for c in common if vigil["events"][c].get("scored_by", "model") != "model"}
    # No clip to compare (every one answered by the gate or a screen) is no disagreement.
    difference = max((abs(baseline["events"][c]["score"] - vigil["events"][c]["score"])
                      for c in common - gated), default=0.0)
    rows = [summarize("baseline (naive)", baseline), summarize(name, vigil)]
    return {"rows": rows, "missing": missing, "gated": len(gated),
            "compared": len(common - gated),
            "scored_by": dict(Counter(vigil["events"][c].get("scored_by", "model")
                                      for c in common)),
            "max_score_difference": difference,
            "scores_match": not missing and difference <= tolerance,
            "speedup_clips_per_s": rows[1]["clips_per_s"] / rows[0]["clips_per_s"],
            "cpu_per_clip_ratio": rows[0]["cpu_s_per_clip"] / rows[1]["cpu_s_per_clip"]}
