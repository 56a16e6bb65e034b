"""The machine a figure was measured on: CPU model, cores and the flags that decide which
engine and precision win (AVX2, AVX-512, AVX-512 BF16, AMX), printed with every result."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import psutil

# The instruction-set flags that change which engine x precision is fastest.
FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def cpu_model() -> str:
    for line in _cpuinfo():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """Which of :data:`FLAGS` this CPU has."""
    for line in _cpuinfo():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [flag for flag in FLAGS if flag in present]
    return []


def emulation() -> str | None:
    """What an ISA cap in the environment emulates, and what it does not reach; None when
    the figures are the CPU's own."""
    caps = {name: os.environ[name] for name in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
            if os.environ.get(name)}
    if not caps:
        return None
    named = ", ".join(f"{name}={value}" for name, value in caps.items())
    return (f"emulated ({named}): torch's kernels and oneDNN are capped; ONNX Runtime's "
            "MLAS and OpenVINO's own kernels read the CPU's flags, so those engines are not "
            "timed")


def describe(device: str) -> dict:
    """Date, CPU, cores, flags, any ISA emulation and device, for a results file."""
    return {"date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "cpu": cpu_model(),
            "cores": psutil.cpu_count(), "cpu_flags": cpu_flags(), "emulation": emulation(),
            "device": device}
