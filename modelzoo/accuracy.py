"""The accuracy check: an engine is packaged only if it answers like the eager model.

At fp32 an engine must match eager to within ``DEFAULT_TOLERANCE`` on every output. A lower
precision (bf16, int8) replaces fp32 only if it stays close by what the output means:

- scores (the audio classifiers): no score moves more than 0.01, nor more than a tenth of
  how far eager's own scores spread over the check inputs; labels at the archive's
  threshold agree on at least 99% of inputs; and the scores track eager's (Pearson
  correlation at least 0.98). The check inputs are representative audio
  (modelzoo/audio_checks.py), among them clips that differ only in their last seconds: an
  engine that does not hear the end of a clip as eager does moves one of a pair's scores;
- category distributions (the fusion head): no probability moves more than 0.01, and the
  top category agrees on at least 99%;
- embeddings (the extractors): every embedding keeps a cosine similarity of at least 0.99
  with eager's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from modelzoo.engines import Inputs, as_args

DEFAULT_TOLERANCE = 1e-4
MAX_SCORE_DIFFERENCE = 0.01
SPREAD_SHARE = 0.1  # of the range of eager's scores over the check inputs
MIN_CORRELATION = 0.98
MIN_AGREEMENT = 0.99
MIN_COSINE = 0.99
OUTPUT_KINDS = ("score", "distribution", "embedding")


class EngineMismatch(AssertionError):
    """The serialised engine disagrees with the eager module beyond tolerance."""


def outputs(module: Callable[..., torch.Tensor],
            inputs: Iterable[Inputs]) -> torch.Tensor:
    """``module``'s outputs over every batch of ``inputs``, concatenated, as float."""
    with torch.inference_mode():
        return torch.cat([module(*as_args(batch)).float() for batch in inputs])


def max_abs_difference(eager: Callable, engine: Callable, inputs: Iterable[Inputs]) -> float:
    """Largest absolute output difference between the two over ``inputs``."""
    batches = list(inputs)
    return (outputs(eager, batches) - outputs(engine, batches)).abs().max().item()


def check_exact(eager: Callable, engine: Callable, inputs: Iterable[Inputs],
                tolerance: float = DEFAULT_TOLERANCE) -> float:
    """The max difference; raises :class:`EngineMismatch` when it exceeds ``tolerance``."""
    worst = max_abs_difference(eager, engine, inputs)
    if not worst <= tolerance:  # NaN fails too
        raise EngineMismatch(f"engine differs from eager by {worst:.2e} > {tolerance:.0e}")
    return worst


def compare(kind: str, reference: torch.Tensor, candidate: torch.Tensor,
            threshold: float = 0.5) -> dict:
    """How close ``candidate`` outputs stay to ``reference`` for an output ``kind``:
    ``max_difference``, ``agreement`` (labels, top categories or the least cosine) and
    ``passed``."""
    if kind == "embedding":
        cosine = torch.nn.functional.cosine_similarity(reference, candidate, dim=-1)
        least = cosine.min().item()
        difference = (reference - candidate).abs().max().item()
        return {"max_difference": difference, "agreement": least,
                "passed": least >= MIN_COSINE}
    difference = (reference - candidate).abs().max().item()
    if kind == "score":
        return _compare_scores(reference.flatten(), candidate.flatten(), threshold, difference)
    if kind != "distribution":
        raise ValueError(f"unknown output kind {kind!r}; known: {OUTPUT_KINDS}")
    agreement = (reference.argmax(-1) == candidate.argmax(-1)).float().mean().item()
    return {"max_difference": difference, "agreement": agreement,
            "passed": difference <= MAX_SCORE_DIFFERENCE and agreement >= MIN_AGREEMENT}


def _compare_scores(reference: torch.Tensor, candidate: torch.Tensor, threshold: float,
                    difference: float) -> dict:
    spread = (reference.max() - reference.min()).item()
    bound = min(MAX_SCORE_DIFFERENCE, SPREAD_SHARE * spread)
    agreement = ((reference >= threshold) == (candidate >= threshold)).float().mean().item()
    correlation = torch.corrcoef(torch.stack([reference, candidate]))[0, 1].item()
    return {"max_difference": difference, "difference_bound": bound, "eager_spread": spread,
            "correlation": correlation, "agreement": agreement,
            # NaN (a constant candidate) fails every comparison.
            "passed": difference <= bound and agreement >= MIN_AGREEMENT
            and correlation >= MIN_CORRELATION}
