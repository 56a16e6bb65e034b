"""TorchServe started in the foreground with Vigil's config.properties, on free ports."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx

from modelzoo.archiver import tool_path
from scripts.services.process import REPO_ROOT, free_port, stop_group, wait_until

WORKER_MARKER = "model_service_worker"
FRONTEND_MARKER = "org.pytorch.serve.ModelServer"


def read_keys(workdir: Path) -> dict[str, str]:
    """TorchServe's ``key_file.json`` as ``{"inference": key, "management": key, ...}``."""
    document = json.loads((workdir / "key_file.json").read_text())
    return {name: entry["key"] for name, entry in document.items()}


class TorchServe:
    """A TorchServe started in the foreground with Vigil's config.properties.

    ``workdir`` gets the copied config (pointing at ``model_store``), the key file, logs and
    TorchServe's pid file, so several instances never share state.
    """

    def __init__(self, *, workdir: Path, model_store: Path, ports: tuple[int, int, int],
                 extra_config: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.model_store = model_store
        self.inference_port, self.management_port, self.metrics_port = ports
        self.extra_config = extra_config or {}
        self.grpc_ports = (free_port(), free_port())
        self.process: subprocess.Popen | None = None
        self._log_start = 0

    @property
    def inference_url(self) -> str:
        return f"http://127.0.0.1:{self.inference_port}"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def key_file(self) -> Path:
        return self.workdir / "key_file.json"

    def client_env(self) -> dict[str, str]:
        """The settings a Vigil daemon needs to call this server: URL, key file and the
        model store's catalogue."""
        return {"VIGIL_TORCHSERVE_URL": self.inference_url,
                "VIGIL_TORCHSERVE_KEY_FILE": str(self.key_file),
                "VIGIL_TORCHSERVE_CATALOGUE": str(self.model_store / "catalogue.json")}

    def write_config(self) -> Path:
        """Vigil's config.properties with this instance's ports and model store."""
        overrides = {
            "inference_address": self.inference_url,
            "management_address": self.management_url,
            "metrics_address": f"http://127.0.0.1:{self.metrics_port}",
            # gRPC listens on fixed ports (7070/7071) unless told otherwise.
            "grpc_inference_port": str(self.grpc_ports[0]),
            "grpc_management_port": str(self.grpc_ports[1]),
            "model_store": str(self.model_store),
            **self.extra_config,
        }
        lines = []
        for line in (REPO_ROOT / "config.properties").read_text().splitlines():
            key = line.split("=", 1)[0].strip()
            if key in overrides:
                line = f"{key}={overrides.pop(key)}"
            lines.append(line)
        lines.extend(f"{key}={value}" for key, value in overrides.items())
        path = self.workdir / "config.properties"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, *, models: list[str], timeout_s: float = 180.0) -> None:
        """Start, then block until every model in ``models`` has a READY worker."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.write_config()
        # TEMP, not TMPDIR, is what TorchServe's launcher turns into java.io.tmpdir, where
        # the frontend unpacks every archive (models/<uuid>/): left in /tmp, each start
        # leaked a few MB that no stop removed.
        env = {**os.environ, "TMPDIR": str(self.workdir), "TEMP": str(self.workdir),
               "LOG_LOCATION": str(self.workdir / "logs"),
               "METRICS_LOCATION": str(self.workdir / "logs")}
        with open(self.workdir / "torchserve.out", "ab") as log:
            self._log_start = log.tell()
            self.process = subprocess.Popen(
                [tool_path("torchserve"), "--start", "--foreground",
                 "--ts-config", str(config), "--ncs"],
                cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(models, timeout_s)

    def wait_ready(self, models: list[str], timeout_s: float) -> None:
        """Poll the management API until each model reports a READY worker."""
        log = self.workdir / "torchserve.out"
        # The wrapper script can outlive a frontend that failed to start: read the log too.
        wait_until(lambda: self.key_file.exists() and all(self.ready_workers(m) for m in models),
                   failed=lambda: (self.process is not None and self.process.poll() is not None)
                   or b"Torchserve stopped." in self._new_log(log),
                   log=log, what="TorchServe", timeout_s=timeout_s, interval_s=0.5)

    def _new_log(self, log: Path) -> bytes:
        """What this start wrote to the log (earlier starts appended before it)."""
        try:
            with open(log, "rb") as handle:
                handle.seek(self._log_start)
                return handle.read()
        except OSError:
            return b""

    def auth(self, which: str = "inference") -> dict[str, str]:
        """The Authorization header for the ``inference`` or ``management`` API."""
        return {"Authorization": f"Bearer {read_keys(self.workdir)[which]}"}

    def predict(self, model: str, body: bytes, timeout_s: float = 60) -> httpx.Response:
        return httpx.post(f"{self.inference_url}/predictions/{model}", content=body,
                          headers=self.auth(), timeout=timeout_s)

    def describe(self, model: str, version: str = "") -> dict:
        """The management API's description of ``model`` (its default version, or
        ``version``): workers, their pids and states."""
        key = read_keys(self.workdir)["management"]
        path = f"{model}/{version}" if version else model
        response = httpx.get(f"{self.management_url}/models/{path}",
                             headers={"Authorization": f"Bearer {key}"}, timeout=5)
        response.raise_for_status()
        return response.json()[0]

    def metrics(self) -> str:
        """TorchServe's Prometheus metrics (its frontend's request and queue counters)."""
        return httpx.get(self.metrics_url, timeout=5).text

    def ready_workers(self, model: str) -> list[dict]:
        try:
            return [w for w in self.describe(model)["workers"] if w["status"] == "READY"]
        except (httpx.HTTPError, OSError, KeyError, ValueError):
            return []

    @classmethod
    @contextlib.contextmanager
    def running(cls, *, workdir: Path, model_store: Path, models: list[str]
                ) -> Iterator[TorchServe]:
        """A started TorchServe on free ports, serving ``models`` from ``model_store``;
        stopped on leaving, whatever happened."""
        server = cls(workdir=workdir, model_store=model_store,
                     ports=(free_port(), free_port(), free_port()))
        try:
            server.start(models=models)
            yield server
        finally:
            server.stop()

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)
            self.process = None
