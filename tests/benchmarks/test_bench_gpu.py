"""The GPU variant's parts that run without a GPU: the sampler and the refusal."""

import os
import subprocess
import sys
import time

import pytest

from benchmarks.gpu import UtilisationSampler
from scripts.services.process import REPO_ROOT


def test_sampler_summarises_what_nvidia_smi_reports(tmp_path, monkeypatch):
    readings = tmp_path / "readings"
    readings.write_text("30, 1000\n90, 3000\n")
    fake = tmp_path / "nvidia-smi"
    # Each call reports the next reading, the way a busy GPU's figures change.
    fake.write_text(f'#!/bin/sh\nhead -n 1 {readings}\nsed -i 1d {readings}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    deadline = time.monotonic() + 30
    with UtilisationSampler(interval_s=0.01) as sampler:
        while len(sampler.samples) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert sampler.samples == [(30.0, 1000.0), (90.0, 3000.0)]
    assert sampler.summary() == {"gpu_util_mean_pct": 60.0, "gpu_util_max_pct": 90.0,
                                 "gpu_memory_max_mib": 3000.0}


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_bench_on_cuda_without_cuda_says_so(tmp_path):
    completed = subprocess.run([sys.executable, "-m", "benchmarks", "--device", "cuda",
                                "--parts", "engines", "--out", str(tmp_path)], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode != 0
    assert "CUDA is not available" in completed.stderr
