"""Turn an eager module into a serialised engine, and check it against eager.

Only TorchScript (traced, frozen) is built today. The engine is named in the manifest and in
the archive so an exported (``torch.export``/AOTInductor) engine can sit beside it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

ENGINES = ("torchscript",)
DEFAULT_TOLERANCE = 1e-4


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


def build(name: str, module: nn.Module, example: Inputs) -> nn.Module:
    """The engine called ``name`` (one of :data:`ENGINES`) for ``module``."""
    if name == "torchscript":
        return trace(module, example)
    raise ValueError(f"unknown engine {name!r}; known: {ENGINES}")


def save(engine: torch.jit.ScriptModule, path: Path) -> Path:
    """Write the TorchScript engine to ``path`` (``.pt``) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(engine, str(path))
    return path

