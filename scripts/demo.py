"""The demo: tiny models in TorchServe, a Tansu broker, and the Vigil daemons.

Livestream audio: builds the tiny archives if they are missing, starts the broker,
TorchServe and ``vigil run audio`` on 127.0.0.1, sends generated clips in several formats
and languages plus a few bad messages, and prints the verdicts and dead letters as tables.
VRT: generated posts (videos, images, text) through ``vigil run vrt``, scores and dead
letters as tables. Min-view triage: calibrates on a generated history, prints the report, and runs
``vigil run minview`` over a small known world. Then it stops everything.

    python -m scripts.demo [--clips 36] [--history-posts 100000]
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from modelzoo import catalogue
from modelzoo.manifest import load_manifest
from scripts import clips, demo_triage, demo_vrt, harness
from scripts.services.process import REPO_ROOT, free_port
from scripts.services.tansu import Tansu
from scripts.services.torchserve import TorchServe

MANIFEST = load_manifest(REPO_ROOT / "archives" / "manifest.yaml")
MODELS = [spec.name for spec in MANIFEST]
# Every language an archive serves, and one none does ("sw"): the fallback scores it.
LANGUAGES = [lang for spec in MANIFEST for lang in spec.languages if lang != "*"] + ["sw"]
FORMATS = ["wav", "flac", "ogg", "opus", "mp3", "m4a"]


def ensure_archives(store: Path) -> None:
    """Build the manifest's archives that the store's catalogue does not hold yet."""
    built = catalogue.read(store)["live"]
    missing = [spec.name for spec in MANIFEST
               if built.get(spec.name) != spec.version or not (store / spec.file_name).exists()]
    if missing:
        harness.step(f"building tiny archives: {', '.join(missing)}")
        subprocess.run([sys.executable, "-m", "orchestrator.cli", "build", "--tiny", "--only",
                        *missing], cwd=REPO_ROOT, check=True)


def demo_messages(count: int) -> list[tuple[bytes | None, bytes]]:
    messages = []
    for index in range(count):
        fmt = FORMATS[index % len(FORMATS)]
        rate = 48_000 if fmt == "opus" else (16_000, 44_100)[index % 2]
        audio = clips.clip(fmt, seconds=3, rate=rate, channels=1 + index % 2, seed=index)
        message = {"clip_id": f"demo-{index:03d}", "stream_id": f"stream-{index % 4}",
                   "language": LANGUAGES[index % len(LANGUAGES)], "format": fmt,
                   "audio_b64": base64.b64encode(audio).decode()}
        messages.append((message["clip_id"].encode(), json.dumps(message).encode()))
    bad = [
        b"{this is not json",
        json.dumps({"clip_id": "demo-bad-1", "stream_id": "s", "language": "hi"}).encode(),
        json.dumps({"clip_id": "demo-bad-2", "stream_id": "s", "language": "hi",
                    "audio_b64": base64.b64encode(b"not audio" * 30).decode()}).encode(),
        json.dumps({"clip_id": "demo-bad-3", "stream_id": "s", "language": "ta",
                    "audio_url": "https://not-allowed.example.com/x.wav"}).encode(),
    ]
    return messages + [(None, value) for value in bad]


def wait_until_handled(daemon: harness.Daemon, expected: int, timeout_s: float) -> None:
    """Follow the daemon's own counters until every message has a verdict or a dead letter."""
    deadline, handled = time.monotonic() + timeout_s, -1
    while time.monotonic() < deadline:
        try:
            now = harness.handled(daemon.metrics())
        except httpx.HTTPError:
            now = 0
        if now != handled:
            handled = now
            print(f"    {handled}/{expected} messages handled", flush=True)
        if handled >= expected:
            return
        time.sleep(1)


def print_tables(messages: list) -> None:
    verdicts = sorted((json.loads(m.value()) for m in messages if not m.topic().endswith(".dlq")),
                      key=lambda v: v["clip_id"])
    letters = [m for m in messages if m.topic().endswith(".dlq")]
    harness.step(f"{len(verdicts)} verdicts (moderation.verdicts)")
    print(f"{'clip_id':<10} {'lang':<5} {'format':<6} {'model':<18} {'score':>6} {'label':<5} "
          f"{'latency':>8}")
    for v in verdicts:
        print(f"{v['clip_id']:<10} {v['language']:<5} {v.get('format', ''):<6} {v['model']:<18} "
              f"{v['score']:>6.3f} {v['label']:<5} {v['latency_ms']:>6}ms")
    harness.step(f"{len(letters)} dead letters (livestream.audio.dlq)")
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers()}
        print(f"offset {headers['vigil-original-offset']:>3}  {headers['vigil-reason']:<18} "
              f"{headers['vigil-error-message'][:80]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=36, help="good clips to send")
    parser.add_argument("--history-posts", type=int, default=100_000,
                        help="size of the generated history the triage is calibrated on")
    args = parser.parse_args(argv)
    store = REPO_ROOT / "archives"
    ensure_archives(store)
    workdir = Path(tempfile.mkdtemp(prefix="vigil-demo-"))
    broker = Tansu(workdir=workdir / "tansu", port=free_port())
    server = TorchServe(workdir=workdir / "torchserve", model_store=store,
                        ports=(free_port(), free_port(), free_port()))
    topics = harness.Topics()
    daemon = harness.Daemon(workdir=workdir, env={})
    ok = False
    try:
        harness.step("starting the Tansu broker")
        broker.start()
        topics.create(broker.bootstrap)
        harness.step(f"starting TorchServe with {len(MODELS)} tiny archives (a minute or two)")
        server.start(models=MODELS)
        harness.step("starting `vigil run audio`")
        daemon.env = {"VIGIL_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                      **server.client_env(),
                      "DATABASE_URL": f"sqlite:///{workdir / 'vigil.db'}"}
        daemon.start()
        daemon.wait_ready()
        messages = demo_messages(args.clips)
        harness.step(f"producing {len(messages)} messages ({args.clips} clips in {len(FORMATS)} formats, "
             f"{len(LANGUAGES)} languages, {len(messages) - args.clips} bad)")
        harness.produce(broker.bootstrap, topics.input, messages)
        wait_until_handled(daemon, len(messages), timeout_s=180)
        results = harness.read_topic(broker.bootstrap, topics.output, expect=args.clips)
        results += harness.read_topic(broker.bootstrap, topics.dlq,
                                      expect=len(messages) - args.clips)
        print_tables(results)
        print("\n    (tiny random-weight models: scores near 0.5 are expected; labels follow "
              "each language's threshold)")
        harness.step(f"metrics: http://127.0.0.1:{daemon.metrics_port}/metrics (daemon), "
             f"{server.metrics_url} (TorchServe)")
        for line in daemon.metrics().splitlines():
            if line.startswith(("vigil_verdicts_total", "vigil_dead_letters_total",
                                "vigil_batch_size_count", "vigil_batch_size_sum")):
                print("   ", line)
        harness.step(f"rows in audio_verdicts: {workdir / 'vigil.db'}; logs in {workdir}")
        ok = len(results) == len(messages)
        ok = demo_vrt.run(workdir, broker.bootstrap, server) and ok
        policy = demo_triage.calibrate(workdir, args.history_posts)
        ok = demo_triage.run_daemon(workdir, broker.bootstrap, policy) and ok
    finally:
        harness.step("stopping the daemon, TorchServe and the broker")
        if daemon.process is not None:
            try:
                print(f"    daemon exited with {daemon.terminate()}")
            except subprocess.TimeoutExpired:
                daemon.kill()
        server.stop()
        broker.stop()
    print("\ndemo finished" if ok else "\ndemo finished, but some messages got no result")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
