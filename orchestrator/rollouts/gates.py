"""The gates a rollout step must pass, decided from intervals on what the step has seen.

Rate gates, each a Wilson interval at ``rollout.confidence`` against its limit:

- flips: shadow-scored clips whose flag the candidate changes, and by direction: newly
  flagged (over-moderation) and newly passed (misses), each with a limit of its own;
- errors: the candidate's failed requests (not input it refused) over its requests;
- slow requests: the share over ``rollout.max_p99_ms`` (a p99 under the cap is a slow
  share under 1%), so two slow answers cannot decide what a p99 of 100 would.

A gate **fails** when its interval's lower bound is over the limit, **passes** when its upper
bound is under it, and is otherwise undecided. The score-distribution gate fails only when
PSI is over ``rollout.max_psi`` *and* a two-sample KS test finds the difference significant
(p < ``rollout.max_p_value``); it passes while PSI is under the limit. Latency is also judged
against live on the same clips: the candidate's p99 over live's, each with a
distribution-free interval (order statistics), fails when even the ratio of their bounds
(candidate's lower over live's upper) is over ``rollout.max_p99_ratio`` and passes when the
other ratio (candidate's upper over live's lower) is under it; a p99 is bounded only from a
few hundred pairs on, so two slow answers cannot decide it.

From ``min_samples`` pairs or requests on: one failing gate rolls the step back; every gate
passing promotes it (once ``min_samples`` pairs are in); otherwise the step keeps collecting,
and after ``max_samples`` pairs it is held as inconclusive for a person to decide. Each stream
counts for at most ``max_pairs_per_stream`` pairs and requests in a step, so one stream can
neither dilute nor swamp it. The false-promotion and false-rollback rates this rule gives are
in docs/OPERATIONS.md, checked by a simulation test.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from orchestrator.config import RolloutConfig
from orchestrator.monitoring import ks_two_sample, psi, quantile_bounds, wilson, z_of

BINS = 10


class Decision(StrEnum):
    """What the gates decide for a step."""

    WAIT = "wait"
    PROMOTE = "promote"
    ROLL_BACK = "roll_back"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class Scored:
    score: float
    label: str
    flagged: bool  # the score is at or over the version's threshold


@dataclass
class StepStats:
    """What one step of one rollout has seen, at most ``per_stream`` of it per stream."""

    per_stream: int
    live_bins: list[int] = field(default_factory=lambda: [0] * BINS)
    candidate_bins: list[int] = field(default_factory=lambda: [0] * BINS)
    live_scores: list[float] = field(default_factory=list)
    candidate_scores: list[float] = field(default_factory=list)
    # The pairs' live and candidate request latencies, each kept sorted (for their p99s).
    live_ms: list[float] = field(default_factory=list)
    candidate_ms: list[float] = field(default_factory=list)
    newly_flagged: int = 0
    newly_passed: int = 0
    requests: int = 0
    errors: int = 0
    slow: int = 0
    _pairs_of: Counter = field(default_factory=Counter)
    _requests_of: Counter = field(default_factory=Counter)

    @property
    def pairs(self) -> int:
        return len(self.live_scores)

    @property
    def flips(self) -> int:
        return self.newly_flagged + self.newly_passed

    def add_pair(self, stream_id: str, live: Scored, candidate: Scored,
                 latencies_ms: tuple[float, float] | None = None) -> None:
        """A shadow pair, with (live, candidate) request latencies where both are known."""
        if self._pairs_of[stream_id] >= self.per_stream:
            return
        if latencies_ms is not None:
            bisect.insort(self.live_ms, latencies_ms[0])
            bisect.insort(self.candidate_ms, latencies_ms[1])
        self._pairs_of[stream_id] += 1
        self.live_bins[_bin(live.score)] += 1
        self.candidate_bins[_bin(candidate.score)] += 1
        self.live_scores.append(live.score)
        self.candidate_scores.append(candidate.score)
        self.newly_flagged += candidate.flagged and not live.flagged
        self.newly_passed += live.flagged and not candidate.flagged

    def add_request(self, stream_id: str, latency_ms: float, *, failed: bool,
                    slow_ms: float) -> None:
        if self._requests_of[stream_id] >= self.per_stream:
            return
        self._requests_of[stream_id] += 1
        self.requests += 1
        self.errors += failed
        self.slow += not failed and latency_ms > slow_ms


@dataclass(frozen=True)
class Gate:
    """One gate's figure and what it says: passed, failed, or None (undecided)."""

    name: str
    value: float
    lower: float
    upper: float
    limit: float
    passed: bool | None

    def shown(self) -> str:
        return f"{self.name} {self.value:.4g} [{self.lower:.4g}, {self.upper:.4g}] vs {self.limit:g}"


@dataclass(frozen=True)
class Judgement:
    decision: Decision
    reason: str
    gates: tuple[Gate, ...]

    @property
    def figures(self) -> dict[str, float]:
        return {gate.name: gate.value for gate in self.gates}


def _verdict_of(lower: float, upper: float, limit: float) -> bool | None:
    """Failed when the interval is over ``limit``, passed when under it, else undecided."""
    return False if lower > limit else True if upper < limit else None


def _rate_gate(name: str, count: int, trials: int, limit: float, z: float) -> Gate:
    lower, upper = wilson(count, trials, z)
    return Gate(name, count / trials if trials else 0.0, lower, upper, limit,
                _verdict_of(lower, upper, limit))


def _bin(score: float) -> int:
    return min(int(score * BINS), BINS - 1)


def _distribution_gate(stats: StepStats, config: RolloutConfig) -> Gate:
    value = psi([n / stats.pairs for n in stats.live_bins],
                [n / stats.pairs for n in stats.candidate_bins])
    if value <= config.max_psi:
        return Gate("psi", value, value, value, config.max_psi, True)
    _, p_value = ks_two_sample(stats.live_scores, stats.candidate_scores)
    return Gate("psi", value, value, value, config.max_psi,
                False if p_value < config.max_p_value else None)


def _latency_gate(stats: StepStats, config: RolloutConfig, z: float) -> Gate:
    candidate, candidate_low, candidate_high = quantile_bounds(stats.candidate_ms, 0.99, z)
    live, live_low, live_high = quantile_bounds(stats.live_ms, 0.99, z)
    lower = candidate_low / live_high if live_high not in (0, math.inf) else 0.0
    upper = candidate_high / live_low if live_low else math.inf
    return Gate("p99_ratio", candidate / live if live else math.inf, lower, upper,
                config.max_p99_ratio, _verdict_of(lower, upper, config.max_p99_ratio))


def judge(stats: StepStats, config: RolloutConfig) -> Judgement:
    """Whether the step waits, is promoted, rolls back, or is inconclusive, and why."""
    z = z_of(config.confidence)
    gates: list[Gate] = []
    if stats.pairs:
        gates += [_rate_gate("flip_rate", stats.flips, stats.pairs, config.max_flip_rate, z),
                  _rate_gate("newly_flagged_rate", stats.newly_flagged, stats.pairs,
                             config.max_newly_flagged_rate, z),
                  _rate_gate("newly_passed_rate", stats.newly_passed, stats.pairs,
                             config.max_newly_passed_rate, z),
                  _distribution_gate(stats, config)]
    if config.max_p99_ratio and len(stats.candidate_ms) >= config.min_samples:
        gates.append(_latency_gate(stats, config, z))
    if stats.requests:
        gates += [_rate_gate("error_rate", stats.errors, stats.requests,
                             config.max_error_rate, z),
                  _rate_gate("slow_rate", stats.slow, stats.requests - stats.errors,
                             config.max_slow_rate, z)]
    judged = tuple(gates)
    seen = f"{stats.pairs} clips, {stats.requests} candidate requests"
    if stats.pairs < config.min_samples and stats.requests < config.min_samples:
        return Judgement(Decision.WAIT, seen, judged)
    failed = [gate.shown() for gate in judged if gate.passed is False]
    if failed:
        return Judgement(Decision.ROLL_BACK, f"gate failed: {'; '.join(failed)} (over {seen})",
                         judged)
    shown = "; ".join(gate.shown() for gate in judged)
    if stats.pairs >= config.min_samples and all(gate.passed for gate in judged):
        return Judgement(Decision.PROMOTE, f"gates passed over {seen}: {shown}", judged)
    if stats.pairs >= config.max_samples:
        undecided = ", ".join(gate.name for gate in judged if gate.passed is None)
        return Judgement(Decision.INCONCLUSIVE, f"undecided after {seen}: {undecided} "
                         f"({shown})", judged)
    return Judgement(Decision.WAIT, f"{seen}: {shown}", judged)
