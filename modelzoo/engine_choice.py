"""``precision: auto``: on the machine that builds, the fastest engine x precision whose
outputs pass the accuracy check.

Candidates on a CPU: TorchScript, OpenVINO and ONNX Runtime at fp32 and int8 (OpenVINO's
NNCF and ONNX Runtime's static quantisation, both calibrated on generated inputs; TorchScript's
dynamic int8), plus bf16 (TorchScript autocast, OpenVINO's precision hint) only where the CPU
has it natively (AVX-512 BF16 or AMX). On a GPU: TorchScript and AOTInductor at fp32, bf16
and fp16. Each candidate is built, checked against eager and timed on a batch of 8; the build
packages the fastest that passes and reports every candidate.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from handlers.runtime import cpu_has_native_bf16, isa_cap
from modelzoo import accuracy, engines
from modelzoo.engines import Engine, EngineError, Inputs

TIMED_BATCH = 8
TIMED_RUNS = 3
# An ISA cap (ONEDNN_MAX_CPU_ISA, to emulate an older CPU) reaches torch's kernels and
# oneDNN only. ONNX Runtime's MLAS and OpenVINO's own kernels read the CPU's flags, and
# OpenVINO crashes (SIGSEGV) when its kernels and the capped oneDNN disagree on a layout.
ENGINES_UNDER_A_CAP = ("torchscript", "aotinductor")


def candidates(device: str) -> list[tuple[str, str]]:
    """The engine x precision pairs worth trying on ``device`` (cpu or cuda)."""
    if device == "cuda":
        return [(e, p) for e in ("torchscript", "aotinductor") for p in ("fp32", "bf16", "fp16")]
    pairs = [(e, p) for e in ("torchscript", "openvino", "onnxruntime") for p in ("fp32", "int8")]
    if cpu_has_native_bf16():
        pairs += [("torchscript", "bf16"), ("openvino", "bf16")]
    if isa_cap():
        return [(e, p) for e, p in pairs if e in ENGINES_UNDER_A_CAP]
    return pairs


@dataclass
class Trial:
    engine: str
    precision: str
    passed: bool = False
    seconds: float | None = None
    check: dict = field(default_factory=dict)
    error: str | None = None

    def row(self) -> dict:
        return {"engine": self.engine, "precision": self.precision, "passed": self.passed,
                "ms_per_batch": None if self.seconds is None else 1000 * self.seconds,
                **self.check, **({"error": self.error} if self.error else {})}


def verify(engine: Callable, eager: nn.Module, precision: str, kind: str,
           checks: Sequence[Inputs], threshold: float,
           tolerance: float = accuracy.DEFAULT_TOLERANCE) -> dict:
    """The accuracy check of a built engine against eager: exact at fp32, else by what the
    output means. Raises :class:`~modelzoo.accuracy.EngineMismatch` when it fails."""
    if precision == "fp32":
        return {"max_difference": accuracy.check_exact(eager, engine, checks, tolerance),
                "passed": True}
    result = accuracy.compare(kind, accuracy.outputs(eager, checks),
                              accuracy.outputs(engine, checks), threshold)
    if not result["passed"]:
        raise accuracy.EngineMismatch(f"{precision} moves outputs too far from fp32: {result}")
    return result


def seconds_per_batch(engine: Callable, batch: Inputs) -> float:
    """Median seconds over a few runs, after one warm-up."""
    with torch.inference_mode():
        engine(*engines.as_args(batch))
        times = []
        for _ in range(TIMED_RUNS):
            started = time.perf_counter()
            engine(*engines.as_args(batch))
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def choose(model: nn.Module, *, kind: str, threshold: float, example: Inputs,
           checks: Sequence[Inputs], calibration: Sequence[Inputs], timed: Inputs,
           scratch: Path, device: str = "cpu",
           on_trial: Callable[[Trial], None] | None = None) -> tuple[Engine, list[Trial]]:
    """Build, check and time every candidate; the fastest that passes, and all trials.
    Raises :class:`EngineError` when none passes."""
    trials, built = [], {}
    for index, (name, precision) in enumerate(candidates(device)):
        trial = Trial(name, precision)
        try:
            engine = engines.build(name, precision, model, example, scratch / str(index),
                                   calibration)
            trial.check = verify(engine, model, precision, kind, checks, threshold)
            trial.passed = True
            trial.seconds = seconds_per_batch(engine, timed)
            built[(name, precision)] = engine
        except (EngineError, accuracy.EngineMismatch) as exc:
            trial.error = str(exc)[:300]
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
    passing = [t for t in trials if t.passed]
    if not passing:
        raise EngineError("no engine x precision passed the accuracy check: "
                          + "; ".join(f"{t.engine} {t.precision}: {t.error}" for t in trials))
    best = min(passing, key=lambda t: t.seconds)
    return built[(best.engine, best.precision)], trials
