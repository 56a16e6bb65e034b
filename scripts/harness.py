"""Drive the real daemon: produce clips, run ``vigil run audio``, read what came out.

Shared by the integration tests, the demo and the benchmarks."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from scripts import clips
from scripts.services.process import free_port

LANGUAGES = ("hi", "ta", "xx")  # xx has no model of its own: the fallback scores it


@dataclass
class Topics:
    """A pipeline's input, output and dead-letter topics (tests use their own names)."""

    input: str = "livestream.audio"
    output: str = "moderation.verdicts"
    partitions: int = 3

    @property
    def dlq(self) -> str:
        return f"{self.input}.dlq"

    def create(self, bootstrap: str) -> None:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        futures = admin.create_topics([NewTopic(self.input, self.partitions, 1),
                                       NewTopic(self.output, 1, 1), NewTopic(self.dlq, 1, 1)])
        for future in futures.values():
            future.result(timeout=30)


def write_results(results: dict, out: str | Path) -> Path:
    """A benchmark's figures as JSON under ``out`` (its folder is created)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"written to {path}")
    return path


def step(message: str) -> None:
    """One progress line of a long script (demo, benchmarks)."""
    print(f"\n==> {message}", flush=True)


def clip_message(index: int, *, language: str | None = None, fmt: str = "wav") -> dict:
    """A valid clip message with inline audio; formats and rates vary with ``index``."""
    audio = clips.clip(fmt, seconds=1, rate=(16_000, 44_100)[index % 2], seed=index)
    return {"clip_id": f"clip-{index}", "stream_id": f"stream-{index % 7}",
            "language": language or LANGUAGES[index % len(LANGUAGES)],
            "audio_b64": base64.b64encode(audio).decode(), "created_at": "2026-11-28T10:00:00Z"}


def produce(bootstrap: str, topic: str, values: list[tuple[bytes | None, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for key, value in values:
        producer.produce(topic, value=value, key=key)
        producer.poll(0)
    assert producer.flush(30) == 0


def produce_clips(bootstrap: str, topic: str, count: int, start: int = 0) -> list[str]:
    """Produce ``count`` clip messages keyed by clip id; returns the clip ids."""
    messages = [clip_message(i) for i in range(start, start + count)]
    produce(bootstrap, topic, [(m["clip_id"].encode(), json.dumps(m).encode()) for m in messages])
    return [m["clip_id"] for m in messages]


def read_topic(bootstrap: str, topic: str, *, expect: int, timeout_s: float = 60,
               idle_s: float = 3.0) -> list:
    """Every message of ``topic`` from the start: waits for ``expect``, then for idleness."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.time_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": 6000})
    consumer.subscribe([topic])
    messages, deadline, last = [], time.monotonic() + timeout_s, time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(100, 0.5)
            good = [m for m in batch if m.error() is None]
            messages.extend(good)
            if good:
                last = time.monotonic()
            if len(messages) >= expect and time.monotonic() - last > idle_s:
                break
    finally:
        consumer.close()
    return messages


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)],
                                     timeout=10)
        return [tp.offset for tp in offsets]
    finally:
        consumer.close()


@dataclass
class Daemon:
    """``vigil run <pipeline>`` (or ``vigil review``) as a subprocess, configured through the
    environment."""

    workdir: Path
    env: dict[str, str]
    pipeline: str = "audio"
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    runs: int = 0

    def start(self) -> None:
        self.runs += 1
        env = {**os.environ, **self.env, "VIGIL_RUNTIME_METRICS_PORT": str(self.metrics_port)}
        log = open(self.workdir / f"daemon-{self.runs}.log", "wb")
        command = ["review"] if self.pipeline == "review" else ["run", self.pipeline]
        self.process = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", *command],
                                        env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Block until the metrics endpoint answers (signal handlers are installed by then)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                self.metrics()
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError(f"daemon not ready:\n{self.log()}")

    def metrics(self) -> str:
        # Uncompressed: benchmarks poll this while they time the daemon's CPU, and gzip
        # would be the daemon's work (py-spy showed it among the daemon's samples).
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics",
                         headers={"Accept-Encoding": "identity"}, timeout=5).text

    def terminate(self, timeout_s: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log(self) -> str:
        return "\n".join((self.workdir / f"daemon-{i}.log").read_text(errors="replace")[-3000:]
                         for i in range(1, self.runs + 1))


def wait_until(condition: Callable[[], object], what: str | Callable[[], str],
               daemon: Daemon | None = None, timeout_s: float = 120,
               interval_s: float = 0.5) -> None:
    """Poll ``condition`` until it is true; fail the test with ``what`` (a text, or a
    function that says what was left at the end) and the daemon's log when ``timeout_s``
    passes first. Tests wait for events, never for fixed seconds."""
    import pytest

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what() if callable(what) else what}\n{daemon.log() if daemon else ''}")
        time.sleep(interval_s)


def query(database_url: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of one query against the daemon's database (SQLite or PostgreSQL)."""
    if database_url.startswith("sqlite"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as db:
            return list(db.execute(sql, params))
    import psycopg

    with psycopg.connect(database_url) as connection:
        return list(connection.execute(sql.replace("?", "%s"), params))


def metric_value(metrics_text: str, name: str, labels: str = "") -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in metrics_text.splitlines():
        if line.startswith(f"{name}{labels} ") or line.startswith(f"{name}{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def sample_value(metrics_text: str, name: str, **labels: str) -> float | None:
    """The sample ``name`` whose labels are exactly ``labels``, whatever their order in the
    text; None when there is none."""
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def handled(metrics_text: str) -> int:
    """Messages the daemon finished: verdicts plus dead letters, from its own counters."""
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
                   if line.startswith(("vigil_verdicts_total{", "vigil_dead_letters_total{"))))


def verdict_counts(messages: list) -> Counter:
    return Counter(json.loads(m.value())["clip_id"] for m in messages)
