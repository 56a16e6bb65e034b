"""VRT throughput end to end (posts per minute) and where a post's time goes.

    python -m benchmarks.vrt [--posts 200] [--out results/bench_vrt.json]

Starts Tansu, TorchServe with the tiny VRT archives and ``vigil run vrt`` with SQLite,
preloads the input topic with generated posts (video with audio and caption, image, text
only, silent video), and times the daemon from ready to the last post handled. The latency
split comes from the daemon's own histograms: media fetch, each extractor, fusion.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import psutil

from modelzoo.families import extractor_names
from modelzoo.manifest import load_manifest
from orchestrator.clock import iso_utc
from scripts import harness, posts
from scripts.services.process import REPO_ROOT, free_port
from scripts.services.tansu import Tansu
from scripts.services.torchserve import TorchServe

FUSION = next(spec for spec in load_manifest(REPO_ROOT / "archives" / "manifest.yaml")
              if spec.family == "vrt_fusion")
MODELS = [*extractor_names(FUSION).values(), FUSION.name]


def mean_seconds(metrics: str, name: str, labels: str) -> dict[str, float]:
    count = harness.metric_value(metrics, f"{name}_count", labels)
    total = harness.metric_value(metrics, f"{name}_sum", labels)
    return {"calls": count, "mean_ms": 1000 * total / count if count else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--out", default="results/bench_vrt.json")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-vrt-"))
    media = workdir / "media"
    media.mkdir()
    broker = Tansu(workdir=workdir / "tansu", port=free_port())
    server = TorchServe(workdir=workdir / "ts", model_store=REPO_ROOT / "archives",
                        ports=(free_port(), free_port(), free_port()))
    topics = harness.Topics(input="posts.created", output="posts.scored")
    daemon = harness.Daemon(workdir=workdir, pipeline="vrt", env={})
    try:
        broker.start()
        topics.create(broker.bootstrap)
        harness.step(f"starting TorchServe with {', '.join(MODELS)}")
        server.start(models=MODELS)
        harness.step(f"generating and producing {args.posts} posts")
        messages = posts.good_posts(args.posts, media, created_at=iso_utc())
        harness.produce(broker.bootstrap, topics.input,
                        [(m["post_id"].encode(), json.dumps(m).encode()) for m in messages])
        daemon.env = {"VIGIL_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                      **server.client_env(),
                      "VIGIL_MEDIA_ALLOWED_SCHEMES": "file",
                      "VIGIL_MEDIA_ALLOWED_DIRS": str(media),
                      "DATABASE_URL": f"sqlite:///{workdir / 'vigil.db'}"}
        daemon.start()
        daemon.wait_ready()
        started, done = time.monotonic(), 0
        while done < args.posts:
            time.sleep(0.5)
            done = harness.handled(daemon.metrics())
            print(f"\r{int(done)}/{args.posts} posts handled", end="", flush=True)
        wall = time.monotonic() - started
        metrics = daemon.metrics()
    finally:
        if daemon.process is not None:
            daemon.terminate()
        server.stop()
        broker.stop()
    split = {"fetch": mean_seconds(metrics, "vigil_media_fetch_seconds", 'pipeline="vrt"')}
    for model in MODELS:
        split[model] = mean_seconds(metrics, "vigil_inference_seconds", f'model="{model}"')
    results = {
        "posts": args.posts, "wall_s": wall, "posts_per_minute": 60 * args.posts / wall,
        "end_to_end": mean_seconds(metrics, "vigil_end_to_end_seconds", 'pipeline="vrt"'),
        "latency_split": split, "cores": psutil.cpu_count(),
    }
    print(f"\n{json.dumps(results, indent=2)}")
    harness.write_results(results, args.out)


if __name__ == "__main__":
    main()
