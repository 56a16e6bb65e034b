"""Sustained clips/s through the whole livestream path, and the daemon's own CPU per message.

    python -m scripts.bench_daemon [--clips 600] [--out results/bench_daemon.json]

Starts Tansu, TorchServe (tiny archives) and ``vigil run audio`` with SQLite, preloads the
input topic, then times the daemon from ready to the last message handled. The daemon's CPU
is read from its own process (user + system), so the model server's cost is not in it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import psutil

from scripts import harness
from scripts.services import REPO_ROOT, Tansu, TorchServe, free_port

MODELS = ["audio_nsfw_hi", "audio_nsfw_ta", "audio_nsfw_multi"]


def cpu_by_thread(pid: int) -> dict[str, float]:
    """CPU seconds per OS thread name (librdkafka names its threads ``rdk:*``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        label = "main (asyncio)" if task.name == str(pid) else name
        totals[label] = totals.get(label, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=600)
    parser.add_argument("--out", default="results/bench_daemon.json")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-daemon-"))
    broker = Tansu(workdir=workdir / "tansu", port=free_port())
    server = TorchServe(workdir=workdir / "ts", model_store=REPO_ROOT / "archives",
                        ports=(free_port(), free_port(), free_port()))
    topics = harness.Topics()
    daemon = harness.Daemon(workdir=workdir, env={})
    try:
        broker.start()
        topics.create(broker.bootstrap)
        server.start(models=MODELS)
        print(f"producing {args.clips} clips", flush=True)
        harness.produce_clips(broker.bootstrap, topics.input, args.clips)
        daemon.env = {"VIGIL_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                      "VIGIL_TORCHSERVE_URL": server.inference_url,
                      "VIGIL_TORCHSERVE_KEY_FILE": str(server.key_file),
                      "VIGIL_ROUTING_LANGUAGES": "hi,ta",
                      "DATABASE_URL": f"sqlite:///{workdir / 'vigil.db'}"}
        daemon.start()
        daemon.wait_ready()
        process = psutil.Process(daemon.process.pid)
        cpu_before = sum(process.cpu_times()[:2])
        started = time.monotonic()
        done = 0
        while done < args.clips:
            time.sleep(0.5)
            done = harness.handled(daemon.metrics())
            print(f"\r{int(done)}/{args.clips} handled", end="", flush=True)
        wall = time.monotonic() - started
        cpu = sum(process.cpu_times()[:2]) - cpu_before
        threads = cpu_by_thread(process.pid)
        metrics = daemon.metrics()
    finally:
        if daemon.process is not None:
            daemon.terminate()
        server.stop()
        broker.stop()
    results = {
        "clips": args.clips, "wall_s": wall, "clips_per_s": args.clips / wall,
        "daemon_cpu_s": cpu, "daemon_cpu_ms_per_clip": cpu / args.clips * 1000,
        "mean_batch": harness.metric_value(metrics, "vigil_batch_size_sum")
        / max(1.0, harness.metric_value(metrics, "vigil_batch_size_count")),
        "cores": psutil.cpu_count(),
        "daemon_cpu_s_by_thread": threads,
    }
    print(f"\n{json.dumps(results, indent=2)}")
    harness.write_results(results, args.out)


if __name__ == "__main__":
    main()
