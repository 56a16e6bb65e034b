"""The min-view triage part of the demo: calibrate on a generated history, print the report,
then run ``vigil run minview`` over a small known world and show what it sent to review."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

from scripts import harness
from scripts.services.process import free_port
from scripts.triage_world import encoded, make_world, views_events


def calibrate(workdir: Path, posts: int) -> Path:
    """Generate a labelled history, calibrate, print the report; returns the policy path."""
    history = workdir / "history.parquet"
    out = workdir / "triage"
    harness.step(f"min-view triage: generating a labelled history of {posts:,} posts")
    subprocess.run([sys.executable, "-m", "orchestrator.cli", "minview", "generate",
                    "--posts", str(posts), "--out", str(history)], check=True)
    harness.step("calibrating score-only and tree policies at 95% recall (about 20 s)")
    subprocess.run([sys.executable, "-m", "orchestrator.cli", "minview", "calibrate",
                    "--history", str(history), "--out", str(out)], check=True)
    return out / "policy.json"


def run_daemon(workdir: Path, bootstrap: str, policy: Path) -> bool:
    """Views events for a seeded world through the daemon; prints the review queue."""
    topics = harness.Topics(input="posts.views", output="review.queue")
    topics.create(bootstrap)
    database_url = f"sqlite:///{workdir / 'vigil.db'}"
    world = make_world()
    world.seed(database_url)
    events, _ = views_events(world)
    bad = [(b"bad", json.dumps({"post_id": "post-1", "views": -1}).encode()),
           (b"unknown", json.dumps({"post_id": "no-such-post", "views": 1500}).encode())]
    daemon = harness.Daemon(workdir=workdir, pipeline="minview", env={
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "VIGIL_TRIAGE_POLICY_PATH": str(policy),
        "VIGIL_TRIAGE_HISTORY_PORT": str(free_port()),
        "VIGIL_TRIAGE_HISTORY_TOKEN": secrets.token_urlsafe(24), "DATABASE_URL": database_url})
    harness.step(f"starting `vigil run minview`; producing {len(events)} views events "
         f"for {len(world.triage_posts)} posts, and {len(bad)} bad events")
    try:
        daemon.start()
        daemon.wait_ready()
        harness.produce(bootstrap, topics.input, encoded(events) + bad)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and \
                harness.handled(daemon.metrics()) < len(events) + len(bad):
            time.sleep(0.5)
        metrics = daemon.metrics()
    finally:
        exit_code = daemon.terminate() if daemon.process else None
    rows = harness.query(database_url, "SELECT post_id, net, reason FROM review_queue "
                         "ORDER BY net, post_id")
    harness.step(f"{len(rows)} reviews enqueued (review_queue, review.queue)")
    for post_id, net, reason in rows:
        print(f"    {post_id:<9} net {net:<5} {reason}")
    for line in metrics.splitlines():
        if line.startswith(("vigil_review_", "vigil_dead_letters_total")) and "_created" not in line:
            print("   ", line)
    print(f"    minview daemon exited with {exit_code}")
    return exit_code == 0 and harness.handled(metrics) == len(events) + len(bad)
