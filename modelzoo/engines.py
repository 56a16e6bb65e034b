"""Turn an eager module into a serialised engine at a precision, and save it for the archive.

Four engines, each exported with a dynamic batch dimension (every Vigil input has a fixed
length: the handlers pad clips, frames, texts and examples to one size):

| engine | artifact | precisions |
|---|---|---|
| ``torchscript`` | traced, frozen ``model.pt`` | fp32; bf16, fp16 (autocast); int8 (dynamic, Linear) |
| ``aotinductor`` | ``torch.export`` + AOT compile, ``model.pt2`` | fp32; bf16, fp16 (autocast) |
| ``openvino`` | OpenVINO IR ``model.xml`` + ``.bin`` | fp32; bf16 (the runtime's precision hint on the fp32 IR); int8 (NNCF, calibrated) |
| ``onnxruntime`` | ``model.onnx`` | fp32; int8 (static quantisation, calibrated) |

A bf16 or fp16 TorchScript or AOTInductor graph ships with its fp32 twin (``model.fp32.pt``), so a
serving machine without native bf16 falls back instead of emulating (handlers/runtime.py).
Every built engine is callable on tensors, so the build checks it against eager the same
way whatever it is (modelzoo/accuracy.py).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from modelzoo import quiet

ENGINES = ("torchscript", "aotinductor", "openvino", "onnxruntime")
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
# fp16 is for GPUs: a CPU serving an fp16 archive runs its fp32 twin (handlers/runtime.py).
SUPPORTED = {"torchscript": ("fp32", "bf16", "fp16", "int8"),
             "aotinductor": ("fp32", "bf16", "fp16"),
             "openvino": ("fp32", "bf16", "int8"), "onnxruntime": ("fp32", "int8")}
# The largest batch an AOTInductor engine accepts: the handlers' row chunk (max_rows).
AOTI_MAX_BATCH = 64
# NNCF and AOTInductor import torch.utils.cpp_extension, which warns on a CPU-only machine
# that it found no CUDA runtime: true, and irrelevant to a CPU build.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

Inputs = torch.Tensor | tuple[torch.Tensor, ...]


class EngineError(RuntimeError):
    """An engine cannot be built at this precision (unsupported, or the export failed)."""


def as_args(inputs: Inputs) -> tuple[torch.Tensor, ...]:
    """A model's positional arguments: one tensor, or a tuple of them (ids and mask)."""
    return inputs if isinstance(inputs, tuple) else (inputs,)


@dataclass
class Artifact:
    """What goes into the archive: the serialised model, and files beside it."""

    serialized: Path
    extra: list[Path] = field(default_factory=list)


@dataclass
class Engine:
    """A built engine: run a batch (tensors in, a tensor out), and save the artifact."""

    name: str
    precision: str
    run: Callable[..., torch.Tensor]
    save: Callable[[Path], Artifact]

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.run(*inputs)


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Autocast(nn.Module):
    """The wrapped model under bf16 or fp16 autocast, outputs back in fp32. Traced, the casts
    become part of the graph; on GPUs (and, for bf16, on CPUs with AVX-512 BF16) the matmuls
    run at the lower precision."""

    def __init__(self, inner: nn.Module, precision: str) -> None:
        super().__init__()
        self.inner = inner
        self.dtype = AUTOCAST_DTYPES[precision]

    def forward(self, inputs: torch.Tensor, *more: torch.Tensor) -> torch.Tensor:
        # The inputs' device picks the autocast: CPU autocast leaves CUDA matmuls in fp32.
        with torch.autocast(inputs.device.type, dtype=self.dtype):
            return self.inner(inputs, *more).float()


def dynamic_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantisation of the Linear layers (weights int8, activations on the fly)."""
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated for torchao, but still the one dynamic int8
        # path that traces to TorchScript; pinned torch 2.11 ships it.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def trace(module: nn.Module, example: Inputs) -> torch.jit.ScriptModule:
    """Trace ``module`` on ``example``; the result accepts other batch sizes too."""
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # TorchScript is deprecated upstream; Vigil keeps it deliberately (see DESIGN.md),
        # and the tracer's warnings about frozen Python-side shape checks are expected.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..*deprecated",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # The tracer reads every attribute of every submodule, and reading transformers'
        # deprecated `is_gradient_checkpointing` alias warns; nothing here uses it.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing",
                                category=FutureWarning)
        # check_trace re-runs the module and compares; the build's accuracy check does that.
        traced = torch.jit.trace(module, as_args(example), check_trace=False)
        return torch.jit.freeze(traced)


def _torchscript(model: nn.Module, precision: str, example: Inputs) -> Engine:
    if precision in AUTOCAST_DTYPES:
        lowered = Autocast(model, precision).eval()
    else:
        lowered = dynamic_int8(model) if precision == "int8" else model
    traced = trace(lowered, example)
    twin = trace(model, example) if precision in AUTOCAST_DTYPES else None

    def save(folder: Path) -> Artifact:
        torch.jit.save(traced, str(folder / "model.pt"))
        if twin is None:
            return Artifact(folder / "model.pt")
        torch.jit.save(twin, str(folder / "model.fp32.pt"))
        return Artifact(folder / "model.pt", [folder / "model.fp32.pt"])
    return Engine("torchscript", precision, traced, save)


def _aoti_package(module: nn.Module, example: Inputs, path: Path) -> Path:
    args = as_args(example)
    batch = torch.export.Dim("batch", min=1, max=AOTI_MAX_BATCH)
    with torch.no_grad(), warnings.catch_warnings():
        # torch.export and Inductor warn about their own internals (deprecations, guards);
        # the result is checked against eager after the build instead.
        warnings.simplefilter("ignore")
        program = torch.export.export(module, args, strict=False,
                                      dynamic_shapes=tuple({0: batch} for _ in args))
        return Path(torch._inductor.aoti_compile_and_package(program,
                                                             package_path=str(path)))


def _aotinductor(model: nn.Module, precision: str, example: Inputs, scratch: Path) -> Engine:
    autocast = precision in AUTOCAST_DTYPES
    lowered = Autocast(model, precision).eval() if autocast else model
    package = _aoti_package(lowered, example, scratch / "model.pt2")
    twin = _aoti_package(model, example, scratch / "model.fp32.pt2") if autocast else None
    runner = torch._inductor.aoti_load_package(str(package))

    def save(folder: Path) -> Artifact:
        shutil.copyfile(package, folder / "model.pt2")
        if twin is None:
            return Artifact(folder / "model.pt2")
        shutil.copyfile(twin, folder / "model.fp32.pt2")
        return Artifact(folder / "model.pt2", [folder / "model.fp32.pt2"])

    def run(*args: torch.Tensor) -> torch.Tensor:
        # The compiled kernels read inputs with the example's strides: a strided view
        # (a slice of longer clips) would be read as garbage, silently.
        return runner(*(arg.contiguous() for arg in args))
    return Engine("aotinductor", precision, run, save)


def _openvino_model(model: nn.Module, example: Inputs):
    import openvino as ov

    args = as_args(example)
    shapes = [ov.PartialShape([-1, *part.shape[1:]]) for part in args]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing",
                                category=FutureWarning)
        return ov.convert_model(model, example_input=args, input=shapes)


def _openvino(model: nn.Module, precision: str, example: Inputs,
              calibration: Sequence[Inputs]) -> Engine:
    import openvino as ov

    converted = _openvino_model(model, example)
    if precision == "int8":
        import nncf

        nncf.set_log_level(logging.ERROR)
        with quiet.no_stdout():
            # subset_size counts dataset items (batches), not samples: use them all.
            converted = nncf.quantize(
                converted, nncf.Dataset([tuple(p.numpy() for p in as_args(batch))
                                         for batch in calibration]),
                subset_size=len(calibration))
    hint = "bf16" if precision == "bf16" else "f32"
    compiled = ov.Core().compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": hint})
    output = compiled.output(0)

    def run(*inputs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(compiled([p.numpy() for p in inputs])[output].copy())

    def save(folder: Path) -> Artifact:
        # compress_to_fp16 would round the weights: the IR keeps them at fp32 and bf16 is
        # the serving runtime's choice.
        ov.save_model(converted, str(folder / "model.xml"), compress_to_fp16=False)
        return Artifact(folder / "model.xml", [folder / "model.bin"])
    return Engine("openvino", precision, run, save)


def _onnx_export(model: nn.Module, example: Inputs, path: Path) -> Path:
    args = as_args(example)
    names = [f"input{i}" for i in range(len(args))]
    fastpath = torch.backends.mha.get_fastpath_enabled()
    # nn.MultiheadAttention's inference fast path is one fused operator ONNX has no
    # counterpart for; the plain path exports (and computes the same thing).
    torch.backends.mha.set_fastpath_enabled(False)
    with torch.no_grad(), warnings.catch_warnings(), _restore_fastpath(fastpath):
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        # A caution about negative indices in advanced indexing: the accuracy check after
        # the export is what tells whether the graph computes the same thing.
        warnings.filterwarnings("ignore", message="Exporting aten::index operator",
                                category=UserWarning)
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing",
                                category=FutureWarning)
        # A strided slice (the keyword spotter's frame hop) is left unfolded: slower to
        # load, not different to compute.
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1",
                                category=UserWarning)
        torch.onnx.export(model, args, str(path), input_names=names, output_names=["output"],
                          dynamic_axes={name: {0: "batch"} for name in [*names, "output"]},
                          opset_version=17, dynamo=False)
    return path


@contextlib.contextmanager
def _restore_fastpath(enabled: bool):
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


class _Calibration:
    """ONNX Runtime's CalibrationDataReader over calibration batches, one sample at a time.

    The calibrator keeps every intermediate tensor of the runs it has not merged yet: for
    wav2vec2-base on 20 s clips that is over a gigabyte per sample. With
    ``CalibStridedMinMax`` it reads a range of samples (``set_range``), merges their min/max
    and forgets them.
    """

    def __init__(self, names: list[str], calibration: Sequence[Inputs]) -> None:
        self._samples = [{n: p[i:i + 1].numpy() for n, p in zip(names, as_args(batch))}
                         for batch in calibration for i in range(len(as_args(batch)[0]))]
        self._pending = iter(self._samples)

    def __len__(self) -> int:
        return len(self._samples)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._pending = iter(self._samples[start_index:end_index])

    def get_next(self) -> dict | None:
        return next(self._pending, None)


def _onnxruntime(model: nn.Module, precision: str, example: Inputs, scratch: Path,
                 calibration: Sequence[Inputs]) -> Engine:
    import onnxruntime as ort

    path = _onnx_export(model, example, scratch / "model.fp32.onnx")
    if precision == "int8":
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        prepared = scratch / "model.prepared.onnx"
        quantized = scratch / "model.int8.onnx"
        names = [f"input{i}" for i in range(len(as_args(example)))]
        with quiet.root_logger_at(logging.ERROR):
            quant_pre_process(str(path), str(prepared))
            quantize_static(str(prepared), str(quantized), _Calibration(names, calibration),
                            quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8, per_channel=True,
                            extra_options={"CalibStridedMinMax": 1})
        path = quantized
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [item.name for item in session.get_inputs()]

    def run(*inputs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {n: p.numpy()
                                                   for n, p in zip(names, inputs)})[0])

    def save(folder: Path) -> Artifact:
        shutil.copyfile(path, folder / "model.onnx")
        return Artifact(folder / "model.onnx")
    return Engine("onnxruntime", precision, run, save)


def build(engine: str, precision: str, model: nn.Module, example: Inputs, scratch: Path,
          calibration: Sequence[Inputs] = ()) -> Engine:
    """The ``engine`` at ``precision`` for ``model``; intermediate files go under
    ``scratch``. ``calibration`` batches feed the int8 quantisers. Raises
    :class:`EngineError` for a pair the engine does not offer or an export that fails."""
    if precision not in SUPPORTED.get(engine, ()):
        raise EngineError(f"{engine} has no {precision}; it offers {SUPPORTED.get(engine)}")
    scratch.mkdir(parents=True, exist_ok=True)
    model.eval()
    try:
        if engine == "torchscript":
            return _torchscript(model, precision, example)
        if engine == "aotinductor":
            return _aotinductor(model, precision, example, scratch)
        if engine == "openvino":
            return _openvino(model, precision, example, calibration)
        return _onnxruntime(model, precision, example, scratch, calibration)
    except EngineError:
        raise
    except Exception as exc:  # noqa: BLE001 - an exporter's failure, named for the build log
        raise EngineError(f"{engine} {precision}: {type(exc).__name__}: {exc}"[:500]) from exc


def scratch_dir(prefix: str) -> tempfile.TemporaryDirectory:
    """A temporary folder for an engine's intermediate files."""
    return tempfile.TemporaryDirectory(prefix=f"vigil-{prefix}-")
