"""End to end, side by side: the naive baseline vs Vigil on the same clips, broker and model.

    python -m scripts.bench_e2e [--clips 16] [--size base] [--out results/bench_e2e.json]

Each path starts first; then the same 20 s FLAC clips are produced to its own topic on one
Tansu broker (``created_at`` stamped at production, so latency includes the burst's queue);
both score them with the same architecture and weights (wav2vec2-``size``, random weights
from the archive's seed) and write SQLite rows and verdict events. The baseline
(``scripts/baseline.py``) takes one message at a time with the eager model in-process; Vigil
runs ``vigil run audio`` against TorchServe with the traced archive (batches of 8). CPU is
the user + system time, from ready to done, of every process involved (baseline; daemon +
TorchServe frontend + workers); wall time runs from the first clip produced. Every clip must be scored by both, with scores equal within ``--tolerance``.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import psutil
from tqdm import tqdm

from modelzoo.build import BuildOptions, build_one, seed_for
from modelzoo.manifest import ArchiveSpec
from orchestrator.stores import iso_utc
from scripts import clips, harness
from scripts.services import Tansu, TorchServe, free_port

MODEL = "audio_nsfw_bench"


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.NoSuchProcess:
            continue
    return total


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def make_clips(count: int) -> list[dict]:
    """The clip messages both paths get (without ``created_at``, stamped when sent)."""
    return [{"clip_id": f"bench-{index}", "stream_id": f"s{index % 4}", "language": "hi",
             "audio_b64": base64.b64encode(clips.clip("flac", seconds=20, seed=index)).decode()}
            for index in tqdm(range(count), desc="generating 20 s clips", unit="clip")]


def send(bootstrap: str, topic: str, messages: list[dict]) -> None:
    now = iso_utc()
    harness.produce(bootstrap, topic, [(m["clip_id"].encode(),
                                        json.dumps({**m, "created_at": now}).encode())
                                       for m in messages])


def verdicts(bootstrap: str, topic: str, count: int) -> dict[str, dict]:
    return {json.loads(m.value())["clip_id"]: json.loads(m.value())
            for m in harness.read_topic(bootstrap, topic, expect=count, timeout_s=120)}


def latencies(events: dict[str, dict]) -> dict[str, float]:
    seconds = sorted((datetime.fromisoformat(e["scored_at"])
                      - datetime.fromisoformat(e["created_at"])).total_seconds()
                     for e in events.values())
    return {"p50_s": statistics.median(seconds),
            "p99_s": seconds[min(len(seconds) - 1, round(0.99 * (len(seconds) - 1)))]}


def run_baseline(workdir: Path, broker: Tansu, messages: list[dict],
                 args: argparse.Namespace) -> dict:
    topics = harness.Topics(input="baseline.audio", output="baseline.verdicts", partitions=1)
    topics.create(broker.bootstrap)
    harness.step(f"baseline: one message at a time, eager wav2vec2-{args.size} in-process")
    command = [sys.executable, "-m", "scripts.baseline", "--bootstrap", broker.bootstrap,
               "--topic", topics.input, "--output-topic", topics.output,
               "--database", str(workdir / "baseline.db"), "--size", args.size,
               "--seed", str(seed_for(MODEL)), "--model-name", MODEL,
               "--count", str(args.clips), "--threads", str(args.threads)]
    process = psutil.Popen(command, stdout=subprocess.PIPE, text=True)
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError("the baseline did not start")
    cpu_before = cpu_seconds([process])
    started = time.monotonic()
    send(broker.bootstrap, topics.input, messages)
    cpu = cpu_before
    while process.poll() is None:
        cpu = max(cpu, cpu_seconds([process]))
        time.sleep(0.5)
    wall = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(f"baseline exited with {process.returncode}")
    events = verdicts(broker.bootstrap, topics.output, args.clips)
    return {"wall_s": wall, "cpu_s": cpu - cpu_before, "events": events}


def run_vigil(workdir: Path, broker: Tansu, messages: list[dict],
              args: argparse.Namespace) -> dict:
    spec = ArchiveSpec(name=MODEL, family="audio_nsfw", language="xx", workers=args.workers,
                       batch_size=8, max_batch_delay_ms=args.batch_delay_ms,
                       response_timeout_s=600, intra_op_threads=args.threads)
    store = workdir / "store"
    with tqdm([spec], desc="building the traced archive") as progress:
        build_one(spec, BuildOptions(export_dir=store, size=args.size, check_batch_sizes=(2,)),
                  progress)
    topics = harness.Topics(input="vigil.audio", output="vigil.verdicts")
    topics.create(broker.bootstrap)
    server = TorchServe(workdir=workdir / "ts", model_store=store,
                        ports=(free_port(), free_port(), free_port()))
    daemon = harness.Daemon(workdir=workdir, env={})
    try:
        harness.step(f"Vigil: TorchServe ({args.workers} worker(s) x {args.threads} threads), "
                     "traced, batches of 8")
        server.start(models=[MODEL], timeout_s=600)
        daemon.env = {"VIGIL_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                      "VIGIL_KAFKA_INPUT_TOPIC": topics.input,
                      "VIGIL_KAFKA_OUTPUT_TOPIC": topics.output,
                      "VIGIL_TORCHSERVE_URL": server.inference_url,
                      "VIGIL_TORCHSERVE_KEY_FILE": str(server.key_file),
                      "VIGIL_TORCHSERVE_TIMEOUT_S": "600",
                      "VIGIL_ROUTING_LANGUAGES": "", "VIGIL_ROUTING_FALLBACK_MODEL": MODEL,
                      "DATABASE_URL": f"sqlite:///{workdir / 'vigil.db'}"}
        daemon.start()
        daemon.wait_ready()
        processes = [psutil.Process(daemon.process.pid), *tree(server.process.pid)]
        cpu_before = cpu_seconds(processes)
        started, done = time.monotonic(), 0
        send(broker.bootstrap, topics.input, messages)
        with tqdm(total=args.clips, desc="Vigil", unit="clip") as progress:
            while done < args.clips:
                time.sleep(0.5)
                now = harness.handled(daemon.metrics())
                if now > done:
                    progress.update(now - done)
                    done = now
        wall = time.monotonic() - started
        cpu = cpu_seconds(processes) - cpu_before
    finally:
        if daemon.process is not None:
            daemon.terminate()
        server.stop()
    events = verdicts(broker.bootstrap, topics.output, args.clips)
    return {"wall_s": wall, "cpu_s": cpu, "events": events}


HOURS_PER_MONTH = 730


def project_cost(clips_per_s: float, *, streams: int, clip_interval_s: float,
                 price_per_hour: float) -> dict:
    """Machines (each as fast as the measured one) and monthly cost to keep up with
    ``streams`` live streams, each sending one clip every ``clip_interval_s``."""
    needed = streams / clip_interval_s
    machines = math.ceil(needed / clips_per_s)
    return {"clips_per_s_needed": needed, "machines": machines,
            "monthly_cost": machines * price_per_hour * HOURS_PER_MONTH}


def summarize(name: str, run: dict, clips_count: int) -> dict:
    return {"path": name, "clips": clips_count, "wall_s": round(run["wall_s"], 2),
            "clips_per_s": clips_count / run["wall_s"],
            "cpu_s_per_clip": run["cpu_s"] / clips_count, **latencies(run["events"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--size", default="base", choices=("tiny", "base"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=psutil.cpu_count())
    parser.add_argument("--batch-delay-ms", type=int, default=100)
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument("--streams", type=int, default=10_000, help="cost projection: live streams")
    parser.add_argument("--clip-interval-s", type=float, default=20.0,
                        help="cost projection: one clip per stream every this many seconds")
    parser.add_argument("--price-per-hour", type=float, default=1.0,
                        help="cost projection: price of one machine like this one, per hour")
    parser.add_argument("--out", default="results/bench_e2e.json")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-e2e-"))
    broker = Tansu(workdir=workdir / "tansu", port=free_port())
    try:
        broker.start()
        messages = make_clips(args.clips)
        baseline = run_baseline(workdir, broker, messages, args)
        vigil = run_vigil(workdir, broker, messages, args)
    finally:
        broker.stop()

    missing = set(baseline["events"]) ^ set(vigil["events"])
    if missing or len(vigil["events"]) != args.clips:
        raise SystemExit(f"not every clip was scored by both paths: {sorted(missing)[:5]}")
    difference = max(abs(baseline["events"][c]["score"] - vigil["events"][c]["score"])
                     for c in baseline["events"])
    rows = [summarize("baseline (naive)", baseline, args.clips),
            summarize("Vigil", vigil, args.clips)]
    scores = [event["score"] for event in vigil["events"].values()]
    results = {"size": args.size, "workers": args.workers, "threads": args.threads,
               "cores": psutil.cpu_count(), "rows": rows,
               "score_range": [min(scores), max(scores)],
               "max_score_difference": difference, "scores_match": difference <= args.tolerance,
               "speedup_clips_per_s": rows[1]["clips_per_s"] / rows[0]["clips_per_s"],
               "cpu_per_clip_ratio": rows[0]["cpu_s_per_clip"] / rows[1]["cpu_s_per_clip"],
               "cost": {row["path"]: project_cost(row["clips_per_s"], streams=args.streams,
                                                  clip_interval_s=args.clip_interval_s,
                                                  price_per_hour=args.price_per_hour)
                        for row in rows}}
    print(f"\n{args.clips} clips of 20 s, wav2vec2-{args.size} (random weights), "
          f"{psutil.cpu_count()} cores")
    print("| path | clips/s | CPU-s per clip | p50 latency | p99 latency |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['path']} | {row['clips_per_s']:.3f} | {row['cpu_s_per_clip']:.2f} | "
              f"{row['p50_s']:.1f} s | {row['p99_s']:.1f} s |")
    print(f"Vigil vs baseline: {results['speedup_clips_per_s']:.2f}x clips/s, "
          f"{results['cpu_per_clip_ratio']:.2f}x less CPU per clip; "
          f"max |score difference| {difference:.1e} over scores in "
          f"[{min(scores):.4f}, {max(scores):.4f}] "
          f"({'match' if results['scores_match'] else 'MISMATCH'})")
    print(f"\nto keep up with {args.streams:,} streams (one clip per {args.clip_interval_s:g} s) "
          f"at {args.price_per_hour:g} per machine-hour:")
    for path, cost in results["cost"].items():
        print(f"  {path}: {cost['machines']:,} machines, {cost['monthly_cost']:,.0f} per month")
    harness.write_results(results, args.out)
    if not results["scores_match"]:
        raise SystemExit("scores differ between the two paths beyond the tolerance")


if __name__ == "__main__":
    main()
