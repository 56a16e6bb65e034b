"""Soak: the audio daemon at half its capacity for a long while, watched every minute.

    python -m benchmarks.soak [--minutes 30] [--fraction 0.5] [--out results/soak]

Starts Tansu, TorchServe with a tiny wav2vec2 archive and ``vigil run audio`` (SQLite),
measures the path's capacity on a burst, then produces clips open-loop at ``--fraction`` of
it for ``--minutes``. Clips are files referenced by ``audio_url`` (the media path is part of
the soak, and the broker's in-memory log stays small). Every minute it records the daemon's
RSS, open file descriptors, the backlog (produced minus finished) and the daemon's own
``vigil_consumer_lag``. It passes when RSS grows less than 10% after the first 5 minutes,
the fd count does not grow after them, and the backlog stays bounded (never more than
30 s of traffic). Writes ``soak.json`` and ``soak.png``; exits 1 when a criterion fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from confluent_kafka import Producer

from benchmarks import e2e, load, machine, stack
from orchestrator.clock import iso_utc
from scripts import clips, harness

WARM_UP_MINUTES = 5
MAX_RSS_GROWTH = 0.10
MAX_BACKLOG_S = 30.0
DISTINCT_CLIPS = 16


def clip_messages(media: Path, count: int, prefix: str) -> list[dict]:
    """``count`` clip messages pointing at a few distinct 3 s FLAC files under ``media``."""
    for seed in range(DISTINCT_CLIPS):
        path = media / f"clip{seed}.flac"
        if not path.exists():
            path.write_bytes(clips.clip("flac", seconds=3, seed=seed))
    return [{"clip_id": f"{prefix}-{i}", "stream_id": f"s{i % 50}", "language": "hi",
             "audio_url": (media / f"clip{i % DISTINCT_CLIPS}.flac").as_uri()}
            for i in range(count)]


class SteadyProducer(threading.Thread):
    """Produces clip messages at ``rate`` per second until stopped; counts what it sent."""

    def __init__(self, bootstrap: str, topic: str, media: Path, rate: float) -> None:
        super().__init__(daemon=True)
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.topic, self.media, self.rate = topic, media, rate
        self.sent = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stopping.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while self.sent < due:
                body = {"clip_id": f"soak-{self.sent}", "stream_id": f"s{self.sent % 50}",
                        "language": "hi", "created_at": iso_utc(),
                        "audio_url": (self.media / f"clip{self.sent % DISTINCT_CLIPS}.flac"
                                      ).as_uri()}
                self.producer.produce(self.topic, key=body["clip_id"].encode(),
                                      value=json.dumps(body).encode())
                self.sent += 1
            self.producer.poll(0)
            time.sleep(0.01)
        self.producer.flush(30)


def sample(path: stack.Served, daemon: psutil.Process, produced: int, minute: float) -> dict:
    metrics = path.daemon.metrics()
    lag = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
              if line.startswith("vigil_consumer_lag{"))
    finished = harness.handled(metrics)
    return {"minute": round(minute, 2), "rss_mib": daemon.memory_info().rss / 2**20,
            "open_fds": daemon.num_fds(), "produced": produced, "finished": finished,
            "backlog": produced - finished, "consumer_lag": lag}


def verdict(samples: list[dict], rate: float, warm_up_minutes: float) -> dict:
    """The pass criteria over the samples after the warm-up."""
    settled = [s for s in samples if s["minute"] >= warm_up_minutes]
    base = settled[0]
    rss_growth = max(s["rss_mib"] for s in settled) / base["rss_mib"] - 1
    fd_growth = max(s["open_fds"] for s in settled) - base["open_fds"]
    backlog_s = max(s["backlog"] for s in samples) / rate
    return {"rss_growth_after_warm_up": rss_growth, "fd_growth_after_warm_up": fd_growth,
            "max_backlog_s": backlog_s,
            "passed": rss_growth < MAX_RSS_GROWTH and fd_growth <= 0
            and backlog_s <= MAX_BACKLOG_S}


def plot(samples: list[dict], path: Path, warm_up_minutes: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s["minute"] for s in samples]
    figure, axes = plt.subplots(3, 1, figsize=(7, 7), sharex=True)
    axes[0].plot(minutes, [s["rss_mib"] for s in samples], marker="o")
    axes[0].set_ylabel("daemon RSS (MiB)")
    axes[1].plot(minutes, [s["open_fds"] for s in samples], marker="o")
    axes[1].set_ylabel("open fds")
    axes[2].plot(minutes, [s["backlog"] for s in samples], marker="o", label="backlog")
    axes[2].plot(minutes, [s["consumer_lag"] for s in samples], marker=".",
                 label="vigil_consumer_lag")
    axes[2].set_ylabel("messages behind")
    axes[2].set_xlabel("minute")
    axes[2].legend()
    for axis in axes:
        axis.axvline(warm_up_minutes, linestyle="--", color="grey")
    figure.suptitle("Soak: the audio daemon at a steady fraction of its capacity")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--fraction", type=float, default=0.5, help="of the measured capacity")
    parser.add_argument("--warm-up-minutes", type=float, default=WARM_UP_MINUTES,
                        help="growth is measured from here on")
    parser.add_argument("--burst", type=int, default=400, help="clips that measure capacity")
    parser.add_argument("--out", default="results/soak")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="vigil-soak-"))
    media = workdir / "media"
    media.mkdir()
    clip_messages(media, 0, "warm")
    store = workdir / "store"
    e2e.build_archive(store, size="tiny", workers=2, threads=1, batch_delay_ms=20,
                      engine="torchscript", precision="fp32")
    env = {"VIGIL_MEDIA_ALLOWED_SCHEMES": "file", "VIGIL_MEDIA_ALLOWED_DIRS": str(media)}
    with stack.broker(workdir) as broker, stack.served(
            workdir, broker.bootstrap, store=store, model=e2e.MODEL, topic_prefix="soak",
            env=env) as path:
        capacity = load.capacity(path, clip_messages(media, args.burst, "burst"),
                                 "soak: measuring capacity")
        rate = args.fraction * capacity
        harness.step(f"capacity {capacity:.1f} clips/s: producing {rate:.1f} clips/s for "
                     f"{args.minutes:.0f} minutes")
        daemon = psutil.Process(path.daemon.process.pid)
        finished_before = path.handled()
        producer = SteadyProducer(broker.bootstrap, path.topics.input, media, rate)
        started = time.monotonic()
        producer.start()
        samples = []
        try:
            while (time.monotonic() - started) / 60 < args.minutes:
                time.sleep(max(0.0, 60 * (len(samples) + 1) - (time.monotonic() - started)))
                row = sample(path, daemon, producer.sent + finished_before,
                             (time.monotonic() - started) / 60)
                samples.append(row)
                print(f"    minute {row['minute']:5.1f}: RSS {row['rss_mib']:6.1f} MiB, "
                      f"{row['open_fds']} fds, backlog {row['backlog']}, "
                      f"lag {row['consumer_lag']:.0f}", flush=True)
        finally:
            producer.stopping.set()
            producer.join()
    result = {"machine": machine.describe("cpu"),
              "capacity_clips_per_s": capacity, "rate_clips_per_s": rate,
              "minutes": args.minutes, "warm_up_minutes": args.warm_up_minutes,
              "samples": samples, **verdict(samples, rate, args.warm_up_minutes)}
    harness.write_results(result, out / "soak.json")
    plot(samples, out / "soak.png", args.warm_up_minutes)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
