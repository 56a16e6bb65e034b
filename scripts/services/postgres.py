"""A throwaway PostgreSQL cluster from Debian's postgresql, for the tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from scripts.services.process import accepts_connections, stop_group, wait_until


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
        """initdb (the first time), start, and block until it accepts connections."""
        data = self.workdir / "data"
        if not data.exists():
            if os.geteuid() == 0:
                shutil.chown(self.workdir, "postgres")
            subprocess.run(self._as_owner([_postgres_bin("initdb"), "-D", str(data), "-U",
                                           "postgres", "--auth=trust", "-E", "UTF8"]),
                           check=True, capture_output=True)
        with open(self.workdir / "postgres.out", "ab") as log:
            self.process = subprocess.Popen(
                self._as_owner([_postgres_bin("postgres"), "-D", str(data), "-p", str(self.port),
                                "-h", "127.0.0.1", "-k", str(self.workdir), "-c", "fsync=off"]),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_until(lambda: accepts_connections(self.port),
                   failed=lambda: self.process.poll() is not None,
                   log=self.workdir / "postgres.out", what="postgres", timeout_s=timeout_s)

    def pause(self) -> None:
        """Stop the server, keeping its data: :meth:`start` brings it back (an outage).

        SIGINT is PostgreSQL's fast shutdown: clients are disconnected, not waited for.
        """
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
            stop_group(self.process, grace_s=5.0)
            self.process = None

    def stop(self) -> None:
        """Stop the server and remove the cluster."""
        self.pause()
        shutil.rmtree(self.workdir, ignore_errors=True)
