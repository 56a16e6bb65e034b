"""Rollouts: their steps, the gates, the table's compare-and-set, canary assignment, and the
scorer's promise that a candidate never delays or fails a live verdict."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from orchestrator.catalogue import Catalogue, ModelEntry, Router
from orchestrator.config import RolloutConfig, RoutingConfig
from orchestrator.db.stores import SqliteStore
from orchestrator.errors import ModelTimeout, ModelUnavailable, RolloutConflict
from orchestrator.messages import Envelope, parse_clip
from orchestrator.metrics import Metrics
from orchestrator.monitoring import share_of
from orchestrator.pipelines.audio import ClipScorer, Verdict, scored
from orchestrator.rollouts import (
    CandidateRequests,
    ClipVersions,
    RolloutControl,
    RolloutView,
    Shadow,
)
from orchestrator.rollouts.gates import Scored
from orchestrator.rollouts.table import Mode, Rollout, RolloutTable, State
from tests.orchestrator.fakes import AUDIO

STEPS = (0.05, 0.25)
CANDIDATE = dataclasses.replace(AUDIO[0], version="2.0", file="audio_nsfw_hi-2.0.mar")
CATALOGUE = Catalogue([*AUDIO, CANDIDATE], {e.name: e.version for e in AUDIO},
                      {"audio_nsfw_hi": "2.0"})
ROUTER = Router.for_audio(CATALOGUE, RoutingConfig(languages=("hi",)))
# Small steps: loose limits, so 20 pairs can decide either way (and no p99 ratio, which
# needs hundreds).
FAST = RolloutConfig(min_samples=20, max_samples=200, shadow_sample=1.0, shadow_timeout_s=0.2,
                     shadow_max_in_flight=4, poll_s=60, max_flip_rate=0.3,
                     max_newly_flagged_rate=0.3, max_newly_passed_rate=0.3, max_error_rate=0.3,
                     max_slow_rate=0.3, max_p99_ratio=0)


def begin() -> Rollout:
    return Rollout.begin("audio_nsfw_hi", "hi", "1.0", "2.0", "test")


def test_a_rollout_steps_from_shadow_through_each_canary_share_to_live():
    rollout = begin()
    seen = [(rollout.mode, rollout.fraction, rollout.step(STEPS))]
    while rollout.running:
        rollout = rollout.promoted(STEPS, "gates passed")
        seen.append((rollout.mode, rollout.fraction, rollout.step(STEPS)))
    assert seen == [("shadow", 0.0, 0), ("canary", 0.05, 1), ("canary", 0.25, 2),
                    ("live", 1.0, 3)]
    assert rollout.state == "promoted" and rollout.serving_version == "2.0"
    assert rollout.revision == 4


def test_a_rolled_back_rollout_serves_live_and_cannot_be_moved_again():
    rollout = begin().promoted(STEPS, "ok").rolled_back("flip rate 0.4 > 0.02")
    assert (rollout.state, rollout.step(STEPS), rollout.serving_version) == \
        (State.ROLLED_BACK, -1, "1.0")
    assert not rollout.on_candidate("any stream")
    with pytest.raises(RolloutConflict, match="not running"):
        rollout.promoted(STEPS, "again")
    with pytest.raises(RolloutConflict, match="is the live version"):
        Rollout.begin("audio_nsfw_hi", "hi", "1.0", "1.0", "same")


def test_canary_streams_are_the_share_asked_for_and_a_larger_share_keeps_them():
    canary = begin().promoted(STEPS, "ok")
    wider = canary.promoted(STEPS, "ok")
    streams = [f"s-{index}" for index in range(20_000)]
    at_5 = {s for s in streams if canary.on_candidate(s)}
    at_25 = {s for s in streams if wider.on_candidate(s)}
    assert 0.04 < len(at_5) / len(streams) < 0.06
    assert 0.235 < len(at_25) / len(streams) < 0.265
    assert at_5 <= at_25


def test_canary_assignment_is_the_same_in_another_process():
    streams = [f"stream-{index}" for index in range(2000)]
    code = ("import json, sys; from orchestrator.monitoring import share_of; "
            "print(json.dumps([share_of(s) for s in json.load(sys.stdin)]))")
    other = subprocess.run([sys.executable, "-c", code], input=json.dumps(streams),
                           capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parents[3])
    assert json.loads(other.stdout) == [share_of(s) for s in streams]


async def test_the_table_writes_a_change_only_over_the_revision_it_was_decided_on(tmp_path):
    async with SqliteStore(str(tmp_path / "v.db")) as store:
        table = RolloutTable(store)
        first = begin()
        assert await table.write(first, None)
        racing = Rollout.begin("audio_nsfw_hi", "hi", "1.0", "3.0", "a second start")
        assert not await table.write(racing, None)
        promoted = first.promoted(STEPS, "gates passed")
        assert await table.write(promoted, first)
        assert not await table.write(first.rolled_back("stale"), first)
        assert await table.get("audio_nsfw_hi", "hi") == promoted
        assert [r.revision for r in await table.history()] == [2, 1]


async def test_rows_that_cannot_be_read_are_skipped_with_a_warning(tmp_path, caplog):
    # SQLite keeps whatever a hand-written INSERT puts in a column; one such row once
    # stopped every audio daemon at start-up, whatever model it named.
    async with SqliteStore(str(tmp_path / "v.db")) as store:
        caplog.set_level(logging.WARNING, logger="orchestrator.rollouts.table")
        table = RolloutTable(store)
        good = begin()
        assert await table.write(good, None)
        await store.execute_many(
            "INSERT INTO model_rollouts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [("audio_nsfw_zz", "zz", "1.0", "2.0", "shadow", 0.0, "running", "by hand",
              "2026-12-01T00:00:00.000Z", "two", None),
             ("audio_nsfw_yy", "yy", "1.0", "2.0", "shadow", 0.0, "running", "by hand",
              "2026-12-01T00:00:00.000Z", "3rd", None),
             ("audio_nsfw_xx", "xx", "1.0", "2.0", "shadow", 0.0, "paused", "by hand",
              "2026-12-01T00:00:00.000Z", 1, None)])
        rollouts = await table.all()
        assert rollouts == [good]
        assert (rollouts[0].mode, rollouts[0].state) == (Mode.SHADOW, State.RUNNING)
        assert await table.get("audio_nsfw_zz", "zz") is None
    assert sum("cannot be read" in r.message for r in caplog.records) == 4  # all(), get()


class FakeModels:
    """TorchServe's answers per version: a score, or an error, after a delay; a delay past
    ``timeout_s`` is a :class:`ModelTimeout` at ``timeout_s``, as the real client's."""

    def __init__(self, answers: dict[str, object], delay_s: dict[str, float] | None = None,
                 timeout_s: float = 60.0):
        self.answers = answers  # only the versions it serves
        self.delay_s = delay_s or {}
        self.timeout_s = timeout_s
        self.calls: list[str] = []

    async def predict(self, model: ModelEntry, body: bytes):
        answer = self.answers[model.version]
        if isinstance(answer, list):  # answers in turn
            answer = answer[len(self.calls) % len(answer)]
        self.calls.append(model.version)
        delay_s = self.delay_s.get(model.version, 0)
        await asyncio.sleep(min(delay_s, self.timeout_s))
        if delay_s > self.timeout_s:
            raise ModelTimeout(f"{model.name} {model.version}: no answer in {self.timeout_s} s")
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def predict_batch(self, model: ModelEntry, bodies: list[bytes]) -> list:
        self.calls.append(f"{model.version} x{len(bodies)}")
        return [self.answers[model.version]] * len(bodies)

    async def serves(self, model: ModelEntry) -> bool:
        return model.version in self.answers


class InlineAudio:
    def decode_inline(self, text: str) -> bytes:
        return text.encode()


def test_a_producer_grinding_ids_cannot_choose_which_version_scores_its_stream():
    canary = begin().promoted(STEPS, "ok").promoted(STEPS, "ok")  # 25%
    ids = [f"s-{index}" for index in range(8000)]
    # Ids ground against the public formula of an unkeyed assignment land on the candidate
    # at the rate any ids do.
    chosen = [s for s in ids if share_of(f"canary/{s}") < canary.fraction]
    landed = sum(canary.on_candidate(s) for s in chosen) / len(chosen)
    assert 0.21 < landed < 0.29
    # Each rollout draws its own key: the same ids, another rollout, other streams.
    other = dataclasses.replace(canary, assignment_key=begin().assignment_key)
    assert {s for s in ids if canary.on_candidate(s)} != {s for s in ids if other.on_candidate(s)}
    # The key is in the row only: not in its repr (logs) nor in `vigil rollout` output.
    from orchestrator.commands.rollout import table
    assert canary.assignment_key not in repr(canary) + table([canary])
    assert len(canary.assignment_key) == 32


def test_the_view_plans_each_clip_without_a_database():
    view = RolloutView(CATALOGUE, ROUTER.models, shadow_sample=0.5)
    streams = [f"s{i}" for i in range(40)]
    assert {view.plan(clip(i, s)).serve.version for i, s in enumerate(streams)} == {"1.0"}
    canary = begin().promoted(STEPS, "ok").promoted(STEPS, "ok")  # 25%
    view.hold(canary)
    plans = [view.plan(clip(i, s)) for i, s in enumerate(streams)]
    assert [p.on_candidate for p in plans] == [canary.on_candidate(s) for s in streams]
    assert all(p.fallback.version == "1.0" and p.rollout is canary for p in plans)
    shadowed = [p for p in plans if not p.on_candidate and p.shadow is not None]
    assert 0 < len(shadowed) < len(plans) and view.is_current(canary)
    view.hold(canary, sit_out=True)
    assert {(view.plan(clip(i, s)).serve.version, view.plan(clip(i, s)).shadow)
            for i, s in enumerate(streams)} == {("1.0", None)}
    assert not view.is_current(begin())  # an equal row read again is another step


def clip(index: int, stream: str):
    value = json.dumps({"clip_id": f"c{index}", "stream_id": stream, "language": "hi",
                        "audio_b64": "AAAA"}).encode()
    return parse_clip(Envelope("in", 0, index, None, value), ROUTER.route)


def answer(score: float) -> dict:
    return {"score": score, "label": "nsfw" if score >= 0.5 else "safe", "threshold": 0.5}


@dataclasses.dataclass
class Rig:
    scorer: ClipScorer
    control: RolloutControl
    view: RolloutView
    metrics: Metrics
    store: SqliteStore

    def metric(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(
            name, {"model": "audio_nsfw_hi", "language": "hi", **labels})


@contextlib.asynccontextmanager
async def rig(folder: Path, rollout: Rollout, live: FakeModels, candidate: FakeModels,
              config: RolloutConfig = FAST, *, batch_requests: bool = False
              ) -> AsyncIterator[Rig]:
    """The audio scorer over fake model answers, with a real rollout table in SQLite."""
    folder.mkdir()
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(SqliteStore(str(folder / "v.db")))
        table = RolloutTable(store)
        assert await table.write(rollout, None)
        metrics = Metrics(CollectorRegistry())
        view = RolloutView(CATALOGUE, ROUTER.models, shadow_sample=config.shadow_sample)
        control = await stack.enter_async_context(
            RolloutControl(table, view, candidate, config, metrics))
        requests = CandidateRequests(candidate, control)
        shadow = await stack.enter_async_context(
            Shadow(requests, store, config.shadow_max_in_flight, metrics, scored))
        versions = ClipVersions(view, live, requests, shadow)
        yield Rig(ClipScorer(live, InlineAudio(), batch_requests=batch_requests,
                             versions=versions), control, view, metrics, store)


async def test_a_canary_stream_gets_the_candidates_verdict_and_live_when_it_is_down(tmp_path):
    canary = begin().promoted(STEPS, "ok").promoted(STEPS, "ok")  # 25%
    on_candidate = [s for s in (f"s{i}" for i in range(40)) if canary.on_candidate(s)]
    assert on_candidate
    live = FakeModels({"1.0": answer(0.2)})
    for candidate, expected in ((FakeModels({"2.0": answer(0.9)}), "2.0"),
                                (FakeModels({"2.0": ModelUnavailable("down")}), "1.0")):
        async with rig(tmp_path / expected, canary, live, candidate) as r:
            outcomes = await r.scorer.score([clip(i, s) for i, s in enumerate(on_candidate)])
        assert all(isinstance(o, Verdict) for o in outcomes)
        assert {o.model.version for o in outcomes} == {expected}


async def test_shadow_never_delays_a_verdict_and_drops_what_it_has_no_room_for(tmp_path):
    live = FakeModels({"1.0": answer(0.2)})
    hanging = FakeModels({"2.0": answer(0.2)}, delay_s={"2.0": 30},
                         timeout_s=FAST.shadow_timeout_s)
    async with rig(tmp_path / "s", begin(), live, hanging) as r:
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcomes = await r.scorer.score([clip(i, f"s{i}") for i in range(8)])
        assert loop.time() - started < 1.0  # the candidate takes 30 s, its budget 0.2 s
        assert [o.model.version for o in outcomes] == ["1.0"] * 8
        assert r.metric("vigil_shadow_dropped_total", reason="full") == \
            8 - FAST.shadow_max_in_flight
        await asyncio.sleep(FAST.shadow_timeout_s + 0.2)
        assert r.metric("vigil_rollout_gate", gate="error_rate") == 1.0


@pytest.mark.parametrize("candidate_scores, step", [([0.2], 1), ([0.2, 0.8, 0.8], -1)])
async def test_shadow_pairs_move_a_rollout_on_and_a_shifted_candidate_back(
        tmp_path, candidate_scores, step):
    live = FakeModels({"1.0": answer(0.2)})
    candidate = FakeModels({"2.0": [answer(score) for score in candidate_scores]})
    async with rig(tmp_path / "r", begin(), live, candidate) as r:
        # Batches of 3 (at most shadow_max_in_flight): the 20th pair, which decides, is
        # not the last of its batch.
        for batch in range(FAST.min_samples // 3 + 2):
            await r.scorer.score([clip(batch * 3 + i, f"x{batch}-{i}") for i in range(3)])
            await asyncio.sleep(0.01)  # the batch's shadow requests finish
        row = await RolloutTable(r.store).get("audio_nsfw_hi", "hi")
        assert row.step(STEPS) == step, row
        assert r.metric("vigil_rollout_state") == step
        if step == -1:  # the gauges show the figures the rollback was decided on
            flip_rate = r.metric("vigil_rollout_gate", gate="flip_rate")
            assert f"flip_rate {flip_rate:.4g} [" in row.reason, (flip_rate, row.reason)
        stored = await r.store.fetch_all("SELECT count(*) FROM shadow_verdicts")
        assert stored[0][0] >= FAST.min_samples


async def test_once_promoted_the_candidate_scores_every_stream_and_is_checked_at_start(
        tmp_path):
    promoted = begin()
    while promoted.running:
        promoted = promoted.promoted(STEPS, "ok")
    live = FakeModels({"1.0": answer(0.2), "2.0": answer(0.3)})  # one TorchServe serves both
    async with rig(tmp_path / "p", promoted, live, FakeModels({"2.0": answer(0.3)})) as r:
        assert r.view.serving() == [CANDIDATE]
        outcomes = await r.scorer.score([clip(i, f"s{i}") for i in range(8)])
    assert {o.model.version for o in outcomes} == {"2.0"}
    assert live.calls == ["2.0"] * 8  # the live client now calls the promoted version


async def test_an_answer_planned_under_the_last_step_does_not_judge_the_next(tmp_path):
    live = FakeModels({"1.0": answer(0.2)})
    async with rig(tmp_path / "n", begin(), live, FakeModels({"2.0": answer(0.9)})) as r:
        old = r.view.plan(clip(0, "s0")).rollout
        table = RolloutTable(r.store)
        assert await table.write(old.promoted(STEPS, "by hand"), old)
        await r.control.refresh()
        for _ in range(FAST.min_samples):  # flips that would roll the new step back
            r.control.record(old, "s0", 5.0, pair=(Scored(0.2, "safe", False),
                                                   Scored(0.9, "nsfw", True)))
        await asyncio.sleep(0.05)
        assert (await table.get("audio_nsfw_hi", "hi")).mode == "canary"
        assert r.metric("vigil_shadow_flip_rate") is None


async def test_one_request_per_model_sends_live_clips_together_and_canary_clips_alone(tmp_path):
    canary = begin().promoted(STEPS, "ok").promoted(STEPS, "ok")  # 25%
    streams = [f"s{i}" for i in range(16)]
    on_candidate = {s for s in streams if canary.on_candidate(s)}
    assert 0 < len(on_candidate) < len(streams)
    live = FakeModels({"1.0": answer(0.2)})
    candidate = FakeModels({"2.0": answer(0.2)})
    async with rig(tmp_path / "b", canary, live, candidate, batch_requests=True) as r:
        outcomes = await r.scorer.score([clip(i, s) for i, s in enumerate(streams)])
        await asyncio.sleep(0.05)  # the shadow requests
        dropped = r.metric("vigil_shadow_dropped_total", reason="full")
    live_served = len(streams) - len(on_candidate)
    assert [o.model.version for o in outcomes] == \
        ["2.0" if s in on_candidate else "1.0" for s in streams]
    assert live.calls == [f"1.0 x{live_served}"]
    # The canary clips, then as much of the shadow sample (every live clip) as had room.
    assert dropped == live_served - FAST.shadow_max_in_flight
    assert candidate.calls == ["2.0"] * (len(on_candidate) + FAST.shadow_max_in_flight)


async def test_a_daemon_that_cannot_serve_the_candidate_sits_the_rollout_out(tmp_path):
    canary = begin().promoted(STEPS, "ok").promoted(STEPS, "ok")  # 25%
    streams = [f"s{i}" for i in range(16)]
    live = FakeModels({"1.0": answer(0.2)})
    elsewhere = FakeModels({})  # this daemon's TorchServe does not have 2.0
    async with rig(tmp_path / "o", canary, live, elsewhere) as r:
        outcomes = await r.scorer.score([clip(i, s) for i, s in enumerate(streams)])
        await asyncio.sleep(0.05)
        row = await RolloutTable(r.store).get("audio_nsfw_hi", "hi")
    assert {o.model.version for o in outcomes} == {"1.0"} and elsewhere.calls == []
    assert row == canary  # left for the daemons that can judge it
