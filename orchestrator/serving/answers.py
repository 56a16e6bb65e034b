"""A model's answer is input too: check it before it becomes a verdict or a fusion input.

Each check returns the value in the type the daemon writes, or raises
:class:`~orchestrator.errors.BadModelResponse` naming the model and what was wrong.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from orchestrator.errors import BadModelResponse


def probability(answer: dict[str, Any], field: str, model: str) -> float:
    """``answer[field]`` as a finite float in [0, 1]."""
    value = _field(answer, field, model)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadModelResponse(f"{model}: {field} is {type(value).__name__}, not a number")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise BadModelResponse(f"{model}: {field} {value!r} is not a finite value in [0, 1]")
    return float(value)


def label(answer: dict[str, Any], field: str, known: Collection[str], model: str) -> str:
    """``answer[field]`` as one of the model's ``known`` labels."""
    value = _field(answer, field, model)
    if not isinstance(value, str) or value not in known:
        raise BadModelResponse(f"{model}: {field} {str(value)[:50]!r} is not one of "
                               f"{sorted(known)}")
    return value


def embedding(answer: dict[str, Any], model: str) -> list[float] | None:
    """The answer's ``embedding``: None (the modality is absent) or finite numbers."""
    value = _field(answer, "embedding", model)
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            for x in value):
        raise BadModelResponse(f"{model}: the embedding is not a non-empty list of finite "
                               "numbers")
    return [float(x) for x in value]


def _field(answer: Any, field: str, model: str) -> Any:
    if not isinstance(answer, dict) or field not in answer:
        raise BadModelResponse(f"{model}: no {field!r} in the answer {str(answer)[:200]}")
    return answer[field]
