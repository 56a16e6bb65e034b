"""The gates a rollout step must pass, judged on what the step has seen so far.

- flip rate: the share of shadow-scored clips whose label the candidate changes;
- PSI of the candidate's scores against live's on the same clips (ten bins on [0, 1]);
- p99 latency of the candidate's requests;
- error rate: the candidate's failed requests (not input it refused) over its requests.

From ``min_samples`` pairs on, one failing gate rolls the rollout back; a step whose
``window`` pairs all pass is promoted. Pairs come from shadow scoring, which goes on at every
step, so the canary steps are judged on the same clips as the shadow step.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from orchestrator.config import RolloutConfig
from orchestrator.monitoring import psi

BINS = 10
LATENCY_SAMPLES = 1000  # p99 of the candidate's most recent requests


class Decision(StrEnum):
    """What the gates decide for a step."""

    WAIT = "wait"
    PROMOTE = "promote"
    ROLL_BACK = "roll_back"


@dataclass(frozen=True, slots=True)
class Scored:
    score: float
    label: str


@dataclass
class StepStats:
    """What one step of one rollout has seen."""

    live_bins: list[int] = field(default_factory=lambda: [0] * BINS)
    candidate_bins: list[int] = field(default_factory=lambda: [0] * BINS)
    pairs: int = 0
    flips: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    requests: int = 0
    errors: int = 0

    def add_pair(self, live: Scored, candidate: Scored) -> None:
        self.live_bins[_bin(live.score)] += 1
        self.candidate_bins[_bin(candidate.score)] += 1
        self.pairs += 1
        self.flips += live.label != candidate.label

    def add_request(self, latency_ms: float, *, failed: bool) -> None:
        self.requests += 1
        self.errors += failed
        if not failed:
            self.latencies_ms.append(latency_ms)

    def figures(self) -> dict[str, float]:
        """Each gate's current value (only those with data)."""
        figures: dict[str, float] = {}
        if self.pairs:
            figures["flip_rate"] = self.flips / self.pairs
            figures["psi"] = psi([n / self.pairs for n in self.live_bins],
                                 [n / self.pairs for n in self.candidate_bins])
        if self.latencies_ms:
            ordered = sorted(self.latencies_ms)
            figures["p99_ms"] = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
        if self.requests:
            figures["error_rate"] = self.errors / self.requests
        return figures


def _bin(score: float) -> int:
    return min(int(score * BINS), BINS - 1)


@dataclass(frozen=True)
class Judgement:
    decision: Decision
    reason: str
    figures: dict[str, float]


def judge(stats: StepStats, config: RolloutConfig) -> Judgement:
    """Whether the step waits, is promoted, or rolls back, and why."""
    figures = stats.figures()
    limits = {"flip_rate": config.max_flip_rate, "psi": config.max_psi,
              "p99_ms": config.max_p99_ms, "error_rate": config.max_error_rate}
    shown = ", ".join(f"{gate} {figures[gate]:.4g}" for gate in limits if gate in figures)
    if stats.pairs < config.min_samples and stats.requests < config.min_samples:
        return Judgement(Decision.WAIT, f"{stats.pairs} pairs", figures)
    failed = [f"{gate} {figures[gate]:.4g} > {limit:g}" for gate, limit in limits.items()
              if figures.get(gate, 0.0) > limit]
    if failed:
        return Judgement(Decision.ROLL_BACK, f"gate failed: {'; '.join(failed)} (over "
                         f"{stats.pairs} clips, {stats.requests} candidate requests)", figures)
    if stats.pairs >= config.window:
        return Judgement(Decision.PROMOTE, f"gates passed over {stats.pairs} clips: {shown}",
                         figures)
    return Judgement(Decision.WAIT, f"{stats.pairs} of {config.window} clips: {shown}", figures)
