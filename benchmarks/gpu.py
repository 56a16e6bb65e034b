"""GPU utilisation while a benchmark part runs, sampled from ``nvidia-smi``."""

from __future__ import annotations

import statistics
import subprocess
import threading

QUERY = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
         "--format=csv,noheader,nounits"]


class UtilisationSampler:
    """Samples every GPU's utilisation (%) and memory (MiB) until stopped."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> UtilisationSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            output = subprocess.run(QUERY, capture_output=True, text=True, check=False).stdout
            for line in output.strip().splitlines():
                utilisation, memory = (float(value) for value in line.split(","))
                self.samples.append((utilisation, memory))

    def summary(self) -> dict:
        if not self.samples:
            return {}
        utilisation = [u for u, _ in self.samples]
        return {"gpu_util_mean_pct": statistics.fmean(utilisation),
                "gpu_util_max_pct": max(utilisation),
                "gpu_memory_max_mib": max(m for _, m in self.samples)}
