"""The gates decide from intervals: noise cannot promote or roll back, one stream cannot
swamp a step, and over many seeded runs the false-promotion and false-rollback rates stay
under what docs/OPERATIONS.md promises."""

from __future__ import annotations

import random

import pytest

from orchestrator.config import RolloutConfig
from orchestrator.rollouts.gates import Decision, Scored, StepStats, judge

DEFAULTS = RolloutConfig()
SLOW_MS = DEFAULTS.max_p99_ms


class Traffic:
    """Shadow pairs and candidate requests with chosen true rates, over many streams."""

    def __init__(self, seed: int, *, newly_flagged: float = 0.0, newly_passed: float = 0.0,
                 errors: float = 0.0, slow: float = 0.0, shift: float = 0.0,
                 slower: float = 1.0, streams: int = 5000) -> None:
        self.rng = random.Random(seed)
        self.newly_flagged, self.newly_passed = newly_flagged, newly_passed
        self.errors, self.slow, self.shift, self.streams = errors, slow, shift, streams
        self.slower = slower  # the candidate's latency over live's on the same clip

    def feed(self, stats: StepStats, count: int, *, stream: str | None = None) -> None:
        rng = self.rng
        for _ in range(count):
            score = rng.random()
            live_flagged = score >= 0.9  # a tenth of live traffic is flagged
            draw = rng.random()
            candidate_flagged = (draw >= self.newly_passed / 0.1 if live_flagged
                                 else draw < self.newly_flagged / 0.9)
            on = stream or f"s{rng.randrange(self.streams)}"
            live_ms = rng.lognormvariate(4, 0.5)  # about 55 ms, p99 about 175 ms
            candidate_ms = SLOW_MS * 2 if rng.random() < self.slow else live_ms * self.slower
            stats.add_pair(on, Scored(score, "x", live_flagged),
                           Scored(min(1.0, score + self.shift), "x", candidate_flagged),
                           latencies_ms=(live_ms, candidate_ms))
            stats.add_request(on, candidate_ms, failed=rng.random() < self.errors,
                              slow_ms=SLOW_MS)


def until_decided(traffic: Traffic, config: RolloutConfig = DEFAULTS) -> tuple[Decision, int]:
    stats = StepStats(config.max_pairs_per_stream)
    while True:
        traffic.feed(stats, 1)
        judgement = judge(stats, config)
        if judgement.decision != Decision.WAIT:
            return judgement.decision, stats.pairs


def test_two_slow_answers_and_two_timeouts_in_the_first_hundred_do_not_decide():
    stats = StepStats(DEFAULTS.max_pairs_per_stream)
    Traffic(1).feed(stats, 96)
    for stream in ("slow-1", "slow-2"):
        stats.add_request(stream, SLOW_MS * 3, failed=False, slow_ms=SLOW_MS)
    for stream in ("timeout-1", "timeout-2"):
        stats.add_request(stream, DEFAULTS.shadow_timeout_s * 1000, failed=True,
                          slow_ms=SLOW_MS)
    Traffic(2).feed(stats, 4)
    judgement = judge(stats, DEFAULTS)
    assert judgement.decision == Decision.WAIT, judgement.reason
    gates = {gate.name: gate for gate in judgement.gates}
    assert gates["slow_rate"].value > DEFAULTS.max_slow_rate  # the point estimate would fail
    assert gates["error_rate"].value > DEFAULTS.max_error_rate


def test_a_perfect_candidate_is_promoted_once_its_intervals_clear_the_limits():
    decision, pairs = until_decided(Traffic(3))
    # 0 misses in n pairs clears a 1% limit at 95% only from n = 381 on (Wilson), and the
    # p99 ratio needs a few hundred pairs to be bounded under 1.5.
    assert decision == Decision.PROMOTE and 381 <= pairs < 800


def test_a_flood_of_agreeing_clips_from_one_stream_cannot_dilute_a_bad_candidate():
    def honest_pairs_until_rolled_back(config: RolloutConfig, seed: int) -> int:
        stats = StepStats(config.max_pairs_per_stream)
        Traffic(5).feed(stats, 400, stream="flooding-stream")  # silence: both versions agree
        bad = Traffic(seed, newly_passed=0.03)  # three times the misses allowed
        for honest in range(1, 3001):
            bad.feed(stats, 1)
            decision = judge(stats, config).decision
            if decision != Decision.WAIT:
                assert decision == Decision.ROLL_BACK
                return honest
        raise AssertionError("undecided")

    capped = [honest_pairs_until_rolled_back(DEFAULTS, seed) for seed in range(10)]
    diluted = [honest_pairs_until_rolled_back(RolloutConfig(max_pairs_per_stream=10**6), seed)
               for seed in range(10)]
    # The cap keeps 20 of the 400: without it the flood hides the misses for 4x as long.
    assert sum(diluted) > 3 * sum(capped), (capped, diluted)


@pytest.mark.parametrize("traffic, gate", [
    (dict(newly_flagged=0.05), "newly_flagged_rate"),
    (dict(newly_passed=0.03), "newly_passed_rate"),
    (dict(errors=0.05), "error_rate"),
    (dict(slow=0.05), "slow_rate"),
    (dict(shift=0.3), "psi"),
    (dict(slower=3.0), "p99_ratio"),
])
def test_each_gate_rolls_back_what_is_clearly_over_its_limit(traffic, gate):
    stats = StepStats(DEFAULTS.max_pairs_per_stream)
    source = Traffic(7, **traffic)
    while (judgement := judge(stats, DEFAULTS)).decision == Decision.WAIT:
        source.feed(stats, 1)
    assert judgement.decision == Decision.ROLL_BACK
    failed = judgement.reason.split(" (over ")[0]
    assert f" {gate} " in failed or failed.startswith(f"gate failed: {gate} "), judgement.reason


def test_a_p99_ratio_needs_enough_pairs_to_be_bounded():
    stats = StepStats(DEFAULTS.max_pairs_per_stream)
    Traffic(9, slower=3.0).feed(stats, 150)
    gate = next(g for g in judge(stats, DEFAULTS).gates if g.name == "p99_ratio")
    assert gate.value > DEFAULTS.max_p99_ratio and gate.upper == float("inf")
    assert gate.passed is None  # three times slower, but 150 pairs cannot bound a p99


def test_a_psi_over_the_limit_on_a_few_clips_is_not_significant_yet():
    stats = StepStats(DEFAULTS.max_pairs_per_stream)
    live = [bin_ / 10 + 0.05 for bin_ in range(10)] * 2
    candidate = [0.15 if score < 0.1 else score for score in live]  # the lowest bin empties
    for index, (a, b) in enumerate(zip(live, candidate)):
        stats.add_pair(f"s{index}", Scored(a, "x", False), Scored(b, "x", False))
    gate = next(g for g in judge(stats, DEFAULTS).gates if g.name == "psi")
    assert gate.value > DEFAULTS.max_psi and gate.passed is None
    for index in range(200):  # the same shift, seen on enough clips, is significant
        for a, b in zip(live, candidate):
            stats.add_pair(f"t{index}", Scored(a, "x", False), Scored(b, "x", False))
    gate = next(g for g in judge(stats, DEFAULTS).gates if g.name == "psi")
    assert gate.passed is False


def test_a_candidate_near_its_limit_is_held_as_inconclusive_after_max_samples():
    config = RolloutConfig(max_samples=1500)
    outcomes = [until_decided(Traffic(seed, newly_passed=0.008), config) for seed in range(20)]
    held = [pairs for decision, pairs in outcomes if decision == Decision.INCONCLUSIVE]
    assert len(held) >= 10 and set(held) == {1500}


# docs/OPERATIONS.md, "Rollouts": what the default gates promise, from 400 seeded runs each
# (the table there); checked here on 100 other seeds.
FALSE_ROLLBACK = {"a fifth of each limit": (dict(newly_flagged=0.004, newly_passed=0.002,
                                                 errors=0.002, slow=0.002), 0.01),
                  "one gate at half its limit": (dict(newly_passed=0.005), 0.04)}
FALSE_PROMOTION = {"newly flagged at twice its limit": dict(newly_flagged=0.04),
                   "newly passed at twice its limit": dict(newly_passed=0.02),
                   "errors at twice the limit": dict(errors=0.02),
                   "slow answers at twice the limit": dict(slow=0.02)}
PROMISED_FALSE_PROMOTION = 0.01
RUNS = 100


@pytest.mark.parametrize("case", FALSE_ROLLBACK)
def test_good_candidates_are_rarely_rolled_back(case):
    rates, promised = FALSE_ROLLBACK[case]
    outcomes = [until_decided(Traffic(seed, **rates))[0] for seed in range(RUNS)]
    assert outcomes.count(Decision.ROLL_BACK) / RUNS <= promised


@pytest.mark.parametrize("case", FALSE_PROMOTION)
def test_bad_candidates_are_rarely_promoted(case):
    outcomes = [until_decided(Traffic(seed, **FALSE_PROMOTION[case]))[0]
                for seed in range(RUNS)]
    assert outcomes.count(Decision.PROMOTE) / RUNS <= PROMISED_FALSE_PROMOTION
