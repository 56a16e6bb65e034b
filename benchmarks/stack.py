"""The services a benchmark runs against: one broker, TorchServe, and Vigil's daemon."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
from tqdm import tqdm

from scripts import harness
from scripts.services.process import free_port
from scripts.services.tansu import Tansu
from scripts.services.torchserve import TorchServe


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User + system CPU of ``processes`` and their reaped children, so far."""
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.NoSuchProcess:
            continue
    return total


class MachineBusy:
    """The share of the machine's CPU time, all processes, spent busy since it was made."""

    def __init__(self) -> None:
        self.before = psutil.cpu_times()

    def fraction(self) -> float:
        after = psutil.cpu_times()
        total = sum(after) - sum(self.before)
        idle = (after.idle + getattr(after, "iowait", 0.0)
                - self.before.idle - getattr(self.before, "iowait", 0.0))
        # The kernel's idle counters can run a hair ahead of the total between two reads.
        return min(1.0, max(0.0, 1 - idle / total)) if total > 0 else 0.0


def process_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


@dataclass
class Served:
    """A running TorchServe + ``vigil run audio`` pair reading ``topics`` on the broker."""

    server: TorchServe
    daemon: harness.Daemon
    topics: harness.Topics
    bootstrap: str

    def processes(self) -> list[psutil.Process]:
        """Every process of the Vigil path: the daemon, the frontend and its workers."""
        return [psutil.Process(self.daemon.process.pid), *process_tree(self.server.process.pid)]

    def handled(self) -> int:
        return harness.handled(self.daemon.metrics())

    def batches(self) -> int:
        """Batches the daemon has formed so far."""
        return int(harness.metric_value(self.daemon.metrics(), "vigil_batch_size_count"))

    def wait_handled(self, count: int, label: str) -> int:
        """Block, with a progress bar, until the daemon has finished ``count`` messages;
        returns how many it has finished by then (a poll may overshoot ``count``)."""
        done = self.handled()
        with tqdm(total=count, initial=done, desc=label, unit="clip", leave=False) as progress:
            while done < count:
                if self.daemon.process.poll() is not None:
                    raise RuntimeError(f"the daemon exited:\n{self.daemon.log()}")
                time.sleep(0.1)
                now = self.handled()
                if now > done:
                    progress.update(now - done)
                    done = now
        return done


@contextlib.contextmanager
def broker(workdir: Path) -> Iterator[Tansu]:
    tansu = Tansu(workdir=workdir / "tansu", port=free_port())
    try:
        tansu.start()
        yield tansu
    finally:
        tansu.stop()


@contextlib.contextmanager
def served(workdir: Path, bootstrap: str, *, store: Path, model: str, topic_prefix: str,
           env: dict[str, str] | None = None, preload: list[tuple[bytes, bytes]] = (),
           server_options: dict | None = None, timeout_s: float = 600) -> Iterator[Served]:
    """TorchServe serving ``model`` from ``store`` and a daemon routing every clip to it.

    ``preload`` (key, value) messages are on the input topic before the daemon starts;
    ``server_options`` go to :class:`TorchServe` (e.g. ``extra_config``)."""
    topics = harness.Topics(input=f"{topic_prefix}.audio", output=f"{topic_prefix}.verdicts")
    topics.create(bootstrap)
    if preload:
        harness.produce(bootstrap, topics.input, list(preload))
    server = TorchServe(workdir=workdir / f"ts-{topic_prefix}", model_store=store,
                        ports=(free_port(), free_port(), free_port()), **(server_options or {}))
    daemon_dir = workdir / f"daemon-{topic_prefix}"
    daemon_dir.mkdir(parents=True, exist_ok=True)
    daemon = harness.Daemon(workdir=daemon_dir, env={})
    try:
        server.start(models=[model], timeout_s=timeout_s)
        daemon.env = {"VIGIL_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                      "VIGIL_KAFKA_INPUT_TOPIC": topics.input,
                      "VIGIL_KAFKA_OUTPUT_TOPIC": topics.output,
                      # The store holds just this archive, serving every language ("*").
                      **server.client_env(),
                      # Inside the benchmark archives' responseTimeout (600 s).
                      "VIGIL_TORCHSERVE_TIMEOUT_S": str(int(timeout_s) // 2),
                      "DATABASE_URL": f"sqlite:///{daemon_dir / 'vigil.db'}",
                      **(env or {})}
        daemon.start()
        daemon.wait_ready()
        yield Served(server, daemon, topics, bootstrap)
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.terminate()
        server.stop()
