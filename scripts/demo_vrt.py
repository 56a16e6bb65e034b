"""The VRT part of the demo: generated posts through ``vigil run vrt`` on the tiny extractor
and fusion archives, then the scores and dead letters as tables."""

from __future__ import annotations

import json
import time
from pathlib import Path

from orchestrator.clock import iso_utc
from scripts import harness, posts
from scripts.services.torchserve import TorchServe


def run(workdir: Path, bootstrap: str, server: TorchServe, count: int = 12) -> bool:
    """Score ``count`` posts plus the bad ones; print what came out. True when all handled."""
    media = workdir / "vrt-media"
    media.mkdir(exist_ok=True)
    topics = harness.Topics(input="posts.created", output="posts.scored")
    topics.create(bootstrap)
    good = posts.good_posts(count, media, created_at=iso_utc())
    bad = posts.bad_posts(media)
    values = [(p["post_id"].encode(), json.dumps({k: v for k, v in p.items() if k != "reason"})
               .encode()) for p in good + bad]
    daemon = harness.Daemon(workdir=workdir, pipeline="vrt", env={
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        **server.client_env(),
        "VIGIL_MEDIA_ALLOWED_SCHEMES": "https,file", "VIGIL_MEDIA_ALLOWED_DIRS": str(media),
        "DATABASE_URL": f"sqlite:///{workdir / 'vigil.db'}"})
    harness.step(f"starting `vigil run vrt`; producing {len(good)} posts (video+audio+caption, "
                 f"image, text only, silent video) and {len(bad)} with bad media")
    try:
        daemon.start()
        daemon.wait_ready()
        harness.produce(bootstrap, topics.input, values)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and harness.handled(daemon.metrics()) < len(values):
            time.sleep(0.5)
        metrics = daemon.metrics()
    finally:
        exit_code = daemon.terminate() if daemon.process else None
    scored = [json.loads(m.value()) for m in
              harness.read_topic(bootstrap, topics.output, expect=len(good))]
    harness.step(f"{len(scored)} posts scored (post_scores, posts.scored)")
    print(f"    {'post_id':<8} {'modalities':<20} {'score':>6} {'top category':<12}")
    for event in sorted(scored, key=lambda e: int(e["post_id"].split("-")[1])):
        print(f"    {event['post_id']:<8} {'+'.join(event['modalities']):<20} "
              f"{event['score']:>6.3f} {event['top_category']:<12}")
    letters = harness.read_topic(bootstrap, topics.dlq, expect=len(bad))
    harness.step(f"{len(letters)} dead letters (posts.created.dlq)")
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers()}
        print(f"    {letter.key().decode():<12} {headers['vigil-reason']:<18} "
              f"{headers['vigil-error-message'][:70]}")
    print("    (tiny random-weight models: the categories are not meaningful)")
    print(f"    vrt daemon exited with {exit_code}")
    return exit_code == 0 and harness.handled(metrics) == len(values)
