"""Rollouts against real TorchServe (serving three versions of one tiny archive side by side),
a real broker and real databases: the gates roll a shifted candidate back and promote an
identical one step by step; a restart resumes a rollout where it was and keeps every stream
on its version; a candidate that hangs neither delays nor fails a live verdict."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import harness
from scripts.services.process import REPO_ROOT
from scripts.services.tansu import Tansu
from scripts.services.torchserve import TorchServe
from tests.integration.conftest import VERSIONS_MODEL

pytestmark = pytest.mark.integration
MODEL = VERSIONS_MODEL
LIVE, SAME, SHIFTED = "1.0", "1.1", "1.2"
STREAMS = 40
# Small steps: 12 pairs decide, so the limits are loose (0 of 12 clears 30% at 95%), and no
# p99 ratio (a p99 needs hundreds of pairs to be bounded).
GATES = {"VIGIL_ROLLOUT_MAX_SAMPLES": "24", "VIGIL_ROLLOUT_MIN_SAMPLES": "12",
         "VIGIL_ROLLOUT_SHADOW_SAMPLE": "1", "VIGIL_ROLLOUT_POLL_S": "1",
         "VIGIL_ROLLOUT_MAX_P99_RATIO": "0",
         **{f"VIGIL_ROLLOUT_MAX_{gate}_RATE": "0.3"
            for gate in ("FLIP", "NEWLY_FLAGGED", "NEWLY_PASSED", "ERROR", "SLOW")}}
NO_MOVES = {"VIGIL_ROLLOUT_MAX_SAMPLES": "100000", "VIGIL_ROLLOUT_MIN_SAMPLES": "100000",
            "VIGIL_ROLLOUT_SHADOW_SAMPLE": "0", "VIGIL_ROLLOUT_POLL_S": "1"}


@pytest.fixture
def env(tmp_path: Path, tansu: Tansu, versions: TorchServe, topics: harness.Topics,
        database_url: str) -> dict[str, str]:
    return {"VIGIL_KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap,
            "VIGIL_KAFKA_GROUP_ID": f"{topics.input}-group",
            "VIGIL_KAFKA_INPUT_TOPIC": topics.input,
            "VIGIL_KAFKA_OUTPUT_TOPIC": topics.output,
            **versions.client_env(), "VIGIL_ROUTING_LANGUAGES": "hi",
            "VIGIL_RUNTIME_DRAIN_TIMEOUT_S": "20", "DATABASE_URL": database_url}


@pytest.fixture
def daemons() -> Iterator[list[harness.Daemon]]:
    """The daemons a test starts, killed at its end whatever happened."""
    started: list[harness.Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()


def start(daemons: list[harness.Daemon], workdir: Path, env: dict[str, str],
          gates: dict[str, str]) -> harness.Daemon:
    daemon = harness.Daemon(workdir=workdir, env={**env, **gates})
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()
    return daemon


def rollout(env: dict[str, str], *args: str) -> str:
    """``vigil rollout ARGS`` against the test's database and catalogue."""
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", "rollout", *args],
                          env={**os.environ, **env}, capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def produce(tansu: Tansu, topics: harness.Topics, start: int, count: int) -> None:
    """Hindi clips ``start`` .. ``start + count``, over :data:`STREAMS` streams."""
    messages = []
    for index in range(start, start + count):
        message = {**harness.clip_message(index, language="hi"),
                   "stream_id": f"stream-{index % STREAMS}"}
        messages.append((message["clip_id"].encode(), json.dumps(message).encode()))
    harness.produce(tansu.bootstrap, topics.input, messages)


def row(database_url: str) -> tuple:
    found = harness.query(database_url, "SELECT mode, fraction, state, reason, revision, "
                          "live_version, candidate_version FROM model_rollouts "
                          "WHERE model = ? AND language = 'hi'", (MODEL,))
    return found[0] if found else ()


def rollout_state(daemon: harness.Daemon) -> float | None:
    return harness.sample_value(daemon.metrics(), "vigil_rollout_state", model=MODEL,
                                language="hi")


def verdicts(database_url: str) -> dict[str, tuple[str, str]]:
    """clip_id: (stream_id, model_version) of every stored verdict."""
    return {clip: (stream, version) for clip, stream, version in harness.query(
        database_url, "SELECT clip_id, stream_id, model_version FROM audio_verdicts")}


def history(database_url: str) -> list[tuple]:
    return harness.query(database_url, "SELECT revision, mode, fraction, state, reason FROM "
                         "model_rollout_history WHERE model = ? ORDER BY revision", (MODEL,))


def feed_until_settled(daemon: harness.Daemon, tansu: Tansu, topics: harness.Topics,
                       database_url: str, start: int = 0, limit: int = 600) -> int:
    """Produce clips 16 at a time, each lot scored before the next, until the rollout is
    no longer running; returns how many clips were produced."""
    produced = start
    while row(database_url)[2] == "running":
        assert produced < limit, f"still {row(database_url)} after {produced} clips"
        produce(tansu, topics, produced, 16)
        produced += 16
        harness.wait_until(lambda: len(verdicts(database_url)) >= produced,
                           f"{produced} verdicts", daemon, timeout_s=120)
    return produced


def test_the_shifted_candidate_is_rolled_back_in_shadow(env, daemons, tmp_path, tansu,
                                                        topics, database_url):
    daemon = start(daemons, tmp_path, env, GATES)  # adopts the catalogue's candidate, 1.2
    harness.wait_until(lambda: rollout_state(daemon) is not None, "the adopted rollout", daemon)
    assert row(database_url)[:3] == ("shadow", 0.0, "running")
    produced = feed_until_settled(daemon, tansu, topics, database_url)

    mode, fraction, state, reason, *_ = row(database_url)
    assert (state, mode) == ("rolled_back", "live")
    assert "gate failed" in reason and ("flip_rate" in reason or "psi" in reason), reason
    stored = verdicts(database_url)
    assert len(stored) == produced and {v for _, v in stored.values()} == {LIVE}
    shadowed = harness.query(database_url, "SELECT DISTINCT version FROM shadow_verdicts")
    assert shadowed == [(SHIFTED,)]
    assert rollout_state(daemon) == -1
    assert harness.sample_value(daemon.metrics(), "vigil_rollbacks_total", model=MODEL,
                                language="hi") == 1
    events = harness.read_topic(tansu.bootstrap, topics.output, expect=produced)
    assert {json.loads(m.value())["model_version"] for m in events} == {LIVE}
    assert "ROLLED BACK" in daemon.log()


def test_the_identical_candidate_is_promoted_step_by_step_to_live(env, daemons, tmp_path,
                                                                  tansu, topics, database_url):
    assert "shadow" in rollout(env, "start", "--model", MODEL, "--candidate", SAME)
    daemon = start(daemons, tmp_path, env, GATES)
    produced = feed_until_settled(daemon, tansu, topics, database_url)

    steps = [(mode, fraction, state) for _, mode, fraction, state, _ in history(database_url)]
    assert steps == [("shadow", 0.0, "running"), ("canary", 0.05, "running"),
                     ("canary", 0.25, "running"), ("live", 1.0, "promoted")]
    assert all("gates passed" in reason for *_, reason in history(database_url)[1:])
    flip_rate = harness.sample_value(daemon.metrics(), "vigil_shadow_flip_rate",
                                     model=MODEL, language="hi")
    assert flip_rate == 0
    produce(tansu, topics, produced, 16)
    harness.wait_until(lambda: len(verdicts(database_url)) >= produced + 16,
                       "verdicts after the promotion", daemon)
    after = [version for clip, (_, version) in verdicts(database_url).items()
             if int(clip.split("-")[1]) >= produced]
    assert after == [SAME] * 16
    assert "live" in rollout(env, "status") and "promoted" in rollout(env, "status")


def test_a_restart_resumes_the_rollout_and_keeps_each_stream_on_its_version(
        env, daemons, tmp_path, tansu, topics, database_url):
    rollout(env, "start", "--model", MODEL, "--candidate", SAME)
    rollout(env, "promote", "--model", MODEL)
    assert "canary 25%" in rollout(env, "promote", "--model", MODEL)
    first = start(daemons, tmp_path, env, NO_MOVES)
    produce(tansu, topics, 0, 2 * STREAMS)
    harness.wait_until(lambda: len(verdicts(database_url)) >= 2 * STREAMS, "first run", first)
    assert first.terminate() == 0

    second = start(daemons, tmp_path, env, GATES)
    harness.wait_until(lambda: rollout_state(second) is not None, "the rollout read", second)
    assert rollout_state(second) == 2  # canary 25%, where the first run left it
    produce(tansu, topics, 2 * STREAMS, 2 * STREAMS)
    harness.wait_until(lambda: len(verdicts(database_url)) >= 4 * STREAMS, "second run",
                       second)
    by_stream: dict[str, set[str]] = {}
    for stream, version in verdicts(database_url).values():
        by_stream.setdefault(stream, set()).add(version)
    assert all(len(seen) == 1 for seen in by_stream.values()), by_stream
    on_candidate = sum(seen == {SAME} for seen in by_stream.values())
    assert 0 < on_candidate < STREAMS

    feed_until_settled(second, tansu, topics, database_url, start=4 * STREAMS)
    assert [(mode, state) for _, mode, _, state, _ in history(database_url)] == [
        ("shadow", "running"), ("canary", "running"), ("canary", "running"),
        ("live", "promoted")]


def test_a_hanging_candidate_neither_delays_nor_fails_a_live_verdict(
        env, daemons, tmp_path, tansu, topics, database_url, versions):
    rollout(env, "start", "--model", MODEL, "--candidate", SAME)
    workers = [w["pid"] for w in versions.describe(MODEL, SAME)["workers"]]
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    try:
        daemon = start(daemons, tmp_path, env, {
            **NO_MOVES, "VIGIL_ROLLOUT_SHADOW_SAMPLE": "1", "VIGIL_ROLLOUT_MIN_SAMPLES": "12",
            "VIGIL_ROLLOUT_SHADOW_TIMEOUT_S": "1", "VIGIL_ROLLOUT_SHADOW_MAX_IN_FLIGHT": "4"})
        # Shadow requests time out one by one (four at a time, the rest dropped): keep clips
        # coming until the error-rate gate has seen enough of them.
        produced = feed_until_settled(daemon, tansu, topics, database_url)
        stored = verdicts(database_url)
        assert len(stored) == produced and {v for _, v in stored.values()} == {LIVE}
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
    assert "error_rate" in row(database_url)[3]
    text = daemon.metrics()
    dropped = harness.sample_value(text, "vigil_shadow_dropped_total", model=MODEL,
                                   language="hi", reason="full")
    assert dropped and dropped > 0
    assert harness.read_topic(tansu.bootstrap, topics.dlq, expect=0, idle_s=1) == []
    assert row(database_url)[2] == "rolled_back"
