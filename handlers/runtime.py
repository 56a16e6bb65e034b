"""The handler's only engine-specific code: load the archive's artifact, and run a batch.

Four engines, told apart by the artifact's suffix: TorchScript (``.pt``), AOTInductor
(``.pt2``), OpenVINO IR (``.xml`` with its ``.bin``) and ONNX Runtime (``.onnx``). Each loaded
engine is a callable from input tensors to an output tensor, so the batch code does not
know which one it runs.

Precision is checked against the serving machine at load time: an archive built for bf16
on a CPU with AVX-512 BF16 or AMX may land on one without; it then runs at fp32 (the
OpenVINO IR and the fp32 graph shipped beside a TorchScript or AOTInductor bf16 one), logged
and reported in every answer, never as a slow emulation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

logger = logging.getLogger(__name__)
Run = Callable[..., torch.Tensor]
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# oneDNN's ISA caps (ONEDNN_MAX_CPU_ISA) under which it runs no native bf16 kernel: set on
# an AVX-512 machine to emulate an older class, and then bf16 is not native either.
CAPS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                     "AVX512_CORE_VNNI")


def isa_cap() -> str | None:
    """The ISA cap oneDNN was given (``ONEDNN_MAX_CPU_ISA``, or its old name), if any."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return cap.upper() if cap else None


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX-512 BF16 or AMX, where bf16 matmuls are not emulated, unless
    oneDNN is capped below them."""
    if isa_cap() in CAPS_WITHOUT_BF16:
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def worker_threads(cores: int, workers_served_together: int) -> int:
    """Intra-op threads per worker: the serving machine's cores shared by every worker of
    the archives served together, at least one each, so workers never oversubscribe."""
    return max(1, cores // max(1, workers_served_together))


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class LoadedEngine:
    """A loaded artifact: what runs a batch, and the precision it really runs at."""

    run: Run
    engine: str
    precision: str


def _runs_at(precision: str, device: torch.device) -> str:
    """``precision`` if the device runs it natively, else fp32 (logged)."""
    if precision in ("bf16", "fp16") and device.type == "cpu" and (
            precision == "fp16" or not cpu_has_native_bf16()):
        logger.warning("built for %s, but this CPU has no native %s: running at fp32",
                       precision, precision)
        return "fp32"
    return precision


def load(path: str, *, device: torch.device, precision: str, threads: int) -> LoadedEngine:
    """Load the artifact at ``path`` for ``device``, at the precision this machine runs."""
    runs_at = _runs_at(precision, device)
    suffix = Path(path).suffix
    if suffix == ".xml":
        return LoadedEngine(_openvino(path, runs_at, threads), "openvino", runs_at)
    if suffix == ".onnx":
        return LoadedEngine(_onnxruntime(path, device, threads), "onnxruntime", runs_at)
    if runs_at != precision:  # a bf16/fp16 graph: its fp32 twin ships beside it
        path = str(Path(path).with_name(f"model.fp32{suffix}"))
    if suffix == ".pt2":
        return LoadedEngine(torch._inductor.aoti_load_package(path), "aotinductor", runs_at)
    module = torch.jit.load(path, map_location=device).eval()
    return LoadedEngine(module, "torchscript", runs_at)


def _openvino(path: str, precision: str, threads: int) -> Run:
    import openvino as ov

    hint = {"bf16": "bf16", "fp16": "f16"}.get(precision, "f32")
    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                     "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    output = compiled.output(0)

    def run(*inputs: torch.Tensor) -> torch.Tensor:
        result = request.infer([part.cpu().numpy() for part in inputs])
        return torch.from_numpy(result[output].copy())
    return run


def _onnxruntime(path: str, device: torch.device, threads: int) -> Run:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    providers = (["CUDAExecutionProvider", "CPUExecutionProvider"] if device.type == "cuda"
                 else ["CPUExecutionProvider"])
    session = ort.InferenceSession(path, options, providers=providers)
    names = [item.name for item in session.get_inputs()]

    def run(*inputs: torch.Tensor) -> torch.Tensor:
        feed = {name: part.cpu().numpy() for name, part in zip(names, inputs)}
        return torch.from_numpy(session.run(None, feed)[0])
    return run
