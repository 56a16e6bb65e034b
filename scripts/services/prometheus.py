"""Debian's Prometheus, to check the dashboards' queries against live metrics."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from scripts.services.process import stop_group, wait_until


class Prometheus:
    """Debian's Prometheus with a given config file, its TSDB in ``workdir``."""

    def __init__(self, *, workdir: Path, config: Path, port: int) -> None:
        self.workdir = workdir
        self.config = config
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "prometheus.out", "ab") as log:
            self.process = subprocess.Popen(
                ["prometheus", f"--config.file={self.config}",
                 f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._ready, failed=lambda: self.process.poll() is not None,
                   log=self.workdir / "prometheus.out", what="prometheus", timeout_s=timeout_s)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str) -> list[dict]:
        """The instant-query result vector of ``expr``; raises ValueError on a PromQL error."""
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        if body.get("status") != "success":
            raise ValueError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]["result"]

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, grace_s=10.0)
            self.process = None
