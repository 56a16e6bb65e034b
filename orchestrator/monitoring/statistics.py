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


def kolmogorov_p(gap: float, effective_n: float) -> float:
    """The asymptotic p-value of a KS statistic ``gap`` on ``effective_n`` observations
    (Kolmogorov's distribution with Stephens' small-sample correction)."""
    if effective_n <= 0 or gap <= 0:
        return 1.0
    root = math.sqrt(effective_n)
    lam = (root + 0.12 + 0.11 / root) * gap
    if lam <= 0.2:
        return 1.0
    p_value = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return min(1.0, max(0.0, p_value))


def ks_two_sample(first: Sequence[float], second: Sequence[float]) -> tuple[float, float]:
    """The KS statistic (the largest gap between the two empirical CDFs) and its asymptotic
    p-value; (0, 1) when either sample is empty."""
    if not first or not second:
        return 0.0, 1.0
    a, b = sorted(first), sorted(second)
    gap = max(abs(bisect.bisect_right(a, x) / len(a) - bisect.bisect_right(b, x) / len(b))
              for x in (*a, *b))
    return gap, kolmogorov_p(gap, len(a) * len(b) / (len(a) + len(b)))


def ks_against(expected: Sequence[float], counts: Sequence[int]) -> tuple[float, float]:
    """One-sample KS of binned ``counts`` against a reference's bin ``expected`` fractions,
    compared at the bin edges (so the gap is a lower bound of the exact one: the p-value
    errs towards "no drift"); (0, 1) without counts."""
    total = sum(counts)
    if not total:
        return 0.0, 1.0
    gap = seen = reference = 0.0
    for fraction, count in zip(expected, counts, strict=True):
        reference += fraction
        seen += count / total
        gap = max(gap, abs(seen - reference))
    return gap, kolmogorov_p(gap, total)


def quantile_bounds(ordered: Sequence[float], quantile: float, z: float
                    ) -> tuple[float, float, float]:
    """The ``quantile`` of the sorted values ``ordered`` and a distribution-free interval
    for it: the order statistics at ranks ``n q ∓ z √(n q (1 - q))`` (binomial, normal
    approximation). The upper bound is infinite while there are too few values to bound
    it."""
    n = len(ordered)
    k = n * quantile
    spread = z * math.sqrt(n * quantile * (1 - quantile))

    def ranked(rank: int) -> float:
        return ordered[max(rank, 1) - 1] if rank <= n else math.inf

    return ranked(math.ceil(k)), ranked(math.floor(k - spread)), ranked(math.ceil(k + spread))
