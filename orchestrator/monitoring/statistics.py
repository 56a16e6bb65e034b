"""Small, exact-enough statistics for decisions on counts and samples, in pure Python (the
orchestrator carries no scipy): keyed draws, Wilson score intervals for a rate, and the
two-sample Kolmogorov–Smirnov test for "do these two samples come from one distribution"."""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Sequence
from statistics import NormalDist


def share_of(text: str, key: str = "") -> float:
    """``text`` hashed to a share in [0, 1), keyed by ``key``: the same in every process and
    after restarts (Python's ``hash`` of a string is salted per process), and unknowable
    without the key, so a draw ``share_of(id, key) < rate`` cannot be steered by whoever
    chooses the id."""
    digest = hashlib.blake2b(text.encode(), key=key.encode()[:64], digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def z_of(confidence: float) -> float:
    """The two-sided normal quantile for ``confidence`` (1.96 at 0.95)."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: int, trials: int, z: float) -> tuple[float, float]:
    """The Wilson score interval of ``successes / trials``; (0, 1) without trials. Unlike
    the normal approximation it stays inside [0, 1] and is honest at 0 successes (0 of 300
    at 95% is 0 to 1.3%, not 0 to 0)."""
    if trials <= 0:
        return 0.0, 1.0
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def ks_two_sample(first: Sequence[float], second: Sequence[float]) -> tuple[float, float]:
    """The KS statistic (the largest gap between the two empirical CDFs) and its asymptotic
    p-value (Kolmogorov's distribution with Stephens' small-sample correction); (0, 1)
    when either sample is empty."""
    if not first or not second:
        return 0.0, 1.0
    a, b = sorted(first), sorted(second)
    gap = max(abs(bisect.bisect_right(a, x) / len(a) - bisect.bisect_right(b, x) / len(b))
              for x in (*a, *b))
    effective = math.sqrt(len(a) * len(b) / (len(a) + len(b)))
    lam = (effective + 0.12 + 0.11 / effective) * gap
    p_value = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return gap, min(1.0, max(0.0, p_value)) if lam > 0.2 else 1.0
