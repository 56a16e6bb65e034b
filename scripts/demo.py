"""The demo: tiny models in TorchServe, a Tansu broker, and the Vigil daemons.

Livestream audio: builds the tiny archives if they are missing, trains a tiny classifier per
demo language on speech generated with espeak-ng (cached across runs), starts the broker,
TorchServe and ``vigil run audio`` on 127.0.0.1, streams fresh spoken clips (positive and
negative), clips in several formats and languages, and a few bad messages, and prints the
verdicts (with the held-out precision and recall of each trained model) and dead letters.
Then a rollout: a shifted candidate of the Hindi model, shadow-scored and judged by its gates.
VRT: generated posts (videos, images, text) through ``vigil run vrt``, scores and dead
letters as tables. Min-view triage: calibrates on a generated history, prints the report, and runs
``vigil run minview`` over a small known world. The review page: ``vigil review`` and
``vigil run quality``; a scripted moderator decides a few clips and the quality figures
show them; the page's address and a token are printed (at a terminal it stays up until
Enter). Then it stops everything.

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
from scripts import (
    clips,
    demo_audio,
    demo_review,
    demo_rollout,
    demo_triage,
    demo_vrt,
    harness,
)
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


def print_tables(messages: list, trained: dict[str, dict]) -> None:
    verdicts = sorted((json.loads(m.value()) for m in messages if not m.topic().endswith(".dlq")),
                      key=lambda v: v["clip_id"])
    letters = [m for m in messages if m.topic().endswith(".dlq")]
    # The demo's own fields ride along in each event's "extra", as any producer's would.
    spoken = [v for v in verdicts if "expected" in v["extra"]]
    harness.step(f"{len(spoken)} spoken clips scored by the trained classifiers "
                 "(moderation.verdicts)")
    print(f"{'clip_id':<12} {'says a policy word':<19} {'model':<18} {'version':<8} "
          f"{'score':>6} {'label':<5}")
    for v in sorted(spoken, key=lambda v: (v["language"], v["extra"]["expected"], v["clip_id"])):
        said = v["extra"]["expected"] == "nsfw"
        print(f"{v['clip_id']:<12} {'yes' if said else 'no':<19} {v['model']:<18} "
              f"{v['model_version']:<8} {v['score']:>6.3f} {v['label']:<5}"
              f"{'' if said == (v['label'] == 'nsfw') else '   <- wrong'}")
    for language, metrics in trained.items():
        name = "audio_nsfw_multi" if language == demo_audio.FALLBACK else f"audio_nsfw_{language}"
        print(f"    {name:<17} {demo_audio.summary(metrics)}")
    others = [v for v in verdicts if "expected" not in v["extra"]]
    harness.step(f"{len(others)} clips of tones and noise in other formats and languages "
                 "(nothing spoken: scores should sit low)")
    print(f"{'clip_id':<10} {'lang':<5} {'format':<6} {'model':<18} {'score':>6} {'label':<5} "
          f"{'latency':>8}")
    for v in others:
        print(f"{v['clip_id']:<10} {v['language']:<5} {v['extra'].get('format', ''):<6} "
              f"{v['model']:<18} {v['score']:>6.3f} {v['label']:<5} {v['latency_ms']:>6}ms")
    harness.step(f"{len(letters)} dead letters (livestream.audio.dlq)")
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers()}
        print(f"offset {headers['vigil-original-offset']:>3}  {headers['vigil-reason']:<18} "
              f"{headers['vigil-error-message'][:80]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=12,
                        help="clips in other formats and languages to send")
    parser.add_argument("--history-posts", type=int, default=100_000,
                        help="size of the generated history the triage is calibrated on")
    args = parser.parse_args(argv)
    store = REPO_ROOT / "archives"
    ensure_archives(store)
    workdir = Path(tempfile.mkdtemp(prefix="vigil-demo-"))
    trained = {language: demo_audio.trained_archive(language, store, workdir)
               for language in (*demo_audio.LANGUAGES, demo_audio.FALLBACK)}
    fusion_report = demo_vrt.trained_fusion(store, workdir)
    candidate = demo_rollout.build_candidate(store)
    database_url = f"sqlite:///{workdir / 'vigil.db'}"
    media = workdir / "media"
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
        demo_rollout.start(database_url, candidate)
        harness.step("starting `vigil run audio`")
        daemon.env = {"VIGIL_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                      **server.client_env(), "VIGIL_MEDIA_ALLOWED_SCHEMES": "file",
                      "VIGIL_MEDIA_ALLOWED_DIRS": str(media), **demo_rollout.GATES,
                      # A fifth of the clips under threshold go to review too (audit).
                      "VIGIL_QUALITY_AUDIT_RATE": "0.2",
                      "DATABASE_URL": database_url}
        daemon.start()
        daemon.wait_ready()
        spoken = [m for language in trained
                  for m in demo_audio.streamed_clips(language, media)]
        messages = [(m["clip_id"].encode(), json.dumps(m).encode()) for m in spoken]
        messages += demo_messages(args.clips)
        good = len(spoken) + args.clips
        harness.step(f"producing {len(messages)} messages ({len(spoken)} fresh spoken clips, "
                     f"{args.clips} clips in {len(FORMATS)} formats and {len(LANGUAGES)} "
                     f"languages, {len(messages) - good} bad)")
        harness.produce(broker.bootstrap, topics.input, messages)
        wait_until_handled(daemon, len(messages), timeout_s=180)
        results = harness.read_topic(broker.bootstrap, topics.output, expect=good)
        results += harness.read_topic(broker.bootstrap, topics.dlq, expect=len(messages) - good)
        print_tables(results, trained)
        harness.step(f"metrics: http://127.0.0.1:{daemon.metrics_port}/metrics (daemon), "
             f"{server.metrics_url} (TorchServe)")
        for line in daemon.metrics().splitlines():
            if line.startswith(("vigil_verdicts_total", "vigil_dead_letters_total",
                                "vigil_batch_size_count", "vigil_batch_size_sum")):
                print("   ", line)
        harness.step(f"rows in audio_verdicts: {workdir / 'vigil.db'}; logs in {workdir}")
        ok = len(results) == len(messages)
        ok = demo_rollout.run(daemon, broker.bootstrap, topics.input, spoken,
                              database_url) and ok
        ok = demo_vrt.run(workdir, broker.bootstrap, server, fusion_report) and ok
        policy = demo_triage.calibrate(workdir, args.history_posts)
        ok = demo_triage.run_daemon(workdir, broker.bootstrap, policy) and ok
        ok = demo_review.run(workdir, broker.bootstrap, store / "catalogue.json",
                             media) and ok
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
