"""Turn an eager module into a serialised engine, and check it against eager.

Two engines: TorchScript (traced, frozen; ``model.pt``), the default, and AOTInductor
(``torch.export`` with a dynamic batch dimension, compiled ahead of time by Inductor into a
``model.pt2`` package for the build machine's device). ``vigil bench`` compares them.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

ENGINES = ("torchscript", "aotinductor")
SUFFIXES = {"torchscript": ".pt", "aotinductor": ".pt2"}
# The largest batch an AOTInductor engine accepts: the handlers' row chunk (max_rows).
AOTI_MAX_BATCH = 64
PRECISIONS = ("fp32", "bf16", "int8")
DEFAULT_TOLERANCE = 1e-4
# A lower precision replaces fp32 only when it stays this close on the benchmark clips.
MAX_SCORE_DIFFERENCE = 0.01
MIN_LABEL_AGREEMENT = 0.99


class EngineMismatch(AssertionError):
    """The serialised engine disagrees with the eager module beyond tolerance."""


Inputs = torch.Tensor | tuple[torch.Tensor, ...]


def as_args(inputs: Inputs) -> tuple[torch.Tensor, ...]:
    """A model's positional arguments: one tensor, or a tuple of them (ids and mask)."""
    return inputs if isinstance(inputs, tuple) else (inputs,)


def trace(module: nn.Module, example: Inputs) -> torch.jit.ScriptModule:
    """Trace ``module`` on ``example``; the result accepts other batch sizes too."""
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # TorchScript is deprecated upstream; Vigil keeps it deliberately (see DESIGN.md),
        # and the tracer's warnings about frozen Python-side shape checks are expected.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..*deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # check_trace re-runs the module and compares; check_outputs does that explicitly.
        traced = torch.jit.trace(module, as_args(example), check_trace=False)
        return torch.jit.freeze(traced)


def max_abs_difference(
    eager: nn.Module, engine: nn.Module, inputs: Iterable[Inputs]
) -> float:
    """Largest absolute output difference between the two modules over ``inputs``."""
    worst = 0.0
    with torch.inference_mode():
        for batch in inputs:
            worst = max(worst, (eager(*as_args(batch)) - engine(*as_args(batch))).abs().max().item())
    return worst


def check_outputs(
    eager: nn.Module, engine: nn.Module, inputs: Iterable[Inputs],
    tolerance: float = DEFAULT_TOLERANCE,
) -> float:
    """Return the max difference; raise :class:`EngineMismatch` when it exceeds ``tolerance``."""
    worst = max_abs_difference(eager, engine, inputs)
    if worst > tolerance:
        raise EngineMismatch(f"engine differs from eager by {worst:.2e} > {tolerance:.0e}")
    return worst


class AotiEngine:
    """An AOTInductor package (``.pt2``) and its loaded runner, callable like the module."""

    def __init__(self, package: Path) -> None:
        self.package = package
        self.runner = torch._inductor.aoti_load_package(str(package))

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.runner(*inputs)


def compile_aoti(module: nn.Module, example: Inputs, folder: Path,
                 max_batch: int = AOTI_MAX_BATCH) -> AotiEngine:
    """Export ``module`` with every input's batch dimension dynamic (1..``max_batch``),
    other dimensions fixed at the example's, and compile it ahead of time to a package."""
    module.eval()
    folder.mkdir(parents=True, exist_ok=True)
    args = as_args(example)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    with torch.no_grad(), warnings.catch_warnings():
        # torch.export and Inductor warn about their own internals (deprecations, guards);
        # the result is checked against eager after the build instead.
        warnings.simplefilter("ignore")
        program = torch.export.export(module, args, dynamic_shapes=tuple({0: batch} for _ in args),
                                      strict=False)
        package = torch._inductor.aoti_compile_and_package(
            program, package_path=str(folder / "model.pt2"))
    return AotiEngine(Path(package))


def build(name: str, module: nn.Module, example: Inputs, scratch: Path):
    """The engine called ``name`` (one of :data:`ENGINES`) for ``module``; AOTInductor
    writes its package under ``scratch``."""
    if name == "torchscript":
        return trace(module, example)
    if name == "aotinductor":
        return compile_aoti(module, example, scratch)
    raise ValueError(f"unknown engine {name!r}; known: {ENGINES}")


def save(engine: torch.jit.ScriptModule | AotiEngine, path: Path) -> Path:
    """Write the engine to ``path`` with its engine's suffix; returns the written path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(engine, AotiEngine):
        target = path.with_suffix(SUFFIXES["aotinductor"])
        shutil.copyfile(engine.package, target)
        return target
    torch.jit.save(engine, str(path))
    return path



class Bf16Autocast(nn.Module):
    """The wrapped model under bf16 autocast, outputs back in fp32. Traced, the casts become
    part of the graph; on CPUs with AVX-512 BF16 (and on GPUs) the matmuls run in bf16."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        # The inputs' device picks the autocast: CPU autocast leaves CUDA matmuls in fp32.
        with torch.autocast(inputs[0].device.type, dtype=torch.bfloat16):
            return self.inner(*inputs).float()

    def example(self, batch: int, generator: torch.Generator | None = None) -> Inputs:
        return self.inner.example(batch, generator)

    def handler_settings(self) -> dict:
        return {**self.inner.handler_settings(), "precision": "bf16"}

    def labels(self) -> list[str]:
        return self.inner.labels()


def with_precision(model: nn.Module, precision: str) -> nn.Module:
    """``model`` at ``precision``: fp32 as is, bf16 autocast, or int8 dynamic quantisation of
    the Linear layers (weights int8, activations quantised on the fly)."""
    if precision == "fp32":
        return model
    if precision == "bf16":
        return Bf16Autocast(model).eval()
    if precision == "int8":
        with warnings.catch_warnings():
            # torch.ao.quantization is deprecated for torchao, but still the one dynamic
            # int8 path that traces to TorchScript; pinned torch 2.11 ships it.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    raise ValueError(f"unknown precision {precision!r}; known: {PRECISIONS}")


def accuracy_check(reference: torch.Tensor, candidate: torch.Tensor, threshold: float) -> dict:
    """Scores of a lower precision against fp32 on the same clips: passes when no score moves
    more than :data:`MAX_SCORE_DIFFERENCE` and labels agree on :data:`MIN_LABEL_AGREEMENT`."""
    difference = (reference - candidate).abs().max().item()
    agreement = ((reference >= threshold) == (candidate >= threshold)).float().mean().item()
    return {"max_difference": difference, "label_agreement": agreement,
            "passed": difference <= MAX_SCORE_DIFFERENCE and agreement >= MIN_LABEL_AGREEMENT}
