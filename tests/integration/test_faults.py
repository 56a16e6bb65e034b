"""Faults an operator meets, on real services: the database stops and comes back, a model
worker is killed holding a batch, SIGTERM arrives while the database is down, a routed
model is not served, the broker cannot be reached. Nothing may be lost or dead-lettered
for an outage; a stop commits only what was stored."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from scripts import harness, posts
from tests.integration.test_audio_pipeline import wait_for_rows

pytestmark = pytest.mark.integration
OUTAGE_S = 30


def rows(database_url: str, table: str = "audio_verdicts", key: str = "clip_id") -> set[str]:
    try:
        return {row[0] for row in harness.query(database_url, f"SELECT {key} FROM {table}")}
    except Exception:  # noqa: BLE001 - the table appears once the daemon has started
        return set()


def paused_during(daemon: harness.Daemon, pipeline: str, seconds: float) -> float:
    """The largest vigil_paused_partitions seen while sleeping ``seconds``."""
    seen, deadline = 0.0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen = max(seen, harness.metric_value(daemon.metrics(), "vigil_paused_partitions",
                                              f'pipeline="{pipeline}"'))
        time.sleep(1)
    return seen


def kill_a_worker(server, model: str) -> int:
    victim = server.describe(model)["workers"][0]["pid"]
    os.kill(victim, signal.SIGKILL)
    return victim


def wait_workers_back(server, models: list[str], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(server.ready_workers(m) for m in models):
            return
        time.sleep(1)
    pytest.fail(f"workers of {models} did not come back")


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_down_30_s_pauses_intake_and_loses_nothing(daemon, topics, tansu, postgres,
                                                           database_url):
    clip_ids = harness.produce_clips(tansu.bootstrap, topics.input, 300)
    daemon.start()
    harness.wait_until(lambda: len(rows(database_url)) >= 30, "no clip stored", daemon)
    postgres.pause()
    try:
        paused = paused_during(daemon, "audio", OUTAGE_S)
        assert daemon.process.poll() is None  # the daemon waits the outage out
    finally:
        postgres.start()
    stored = wait_for_rows(database_url, set(clip_ids), daemon)
    metrics = daemon.metrics()
    assert daemon.terminate() == 0
    assert paused > 0  # intake paused while the store was down
    assert set(stored) == set(clip_ids) and len(stored) == len(clip_ids)
    assert harness.read_topic(tansu.bootstrap, topics.dlq, expect=0, timeout_s=5) == []
    assert harness.metric_value(metrics, "vigil_retries_total", 'pipeline="audio"') > 0


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_sigterm_while_postgres_is_down_exits_in_time_and_commits_only_what_was_stored(
        daemon, topics, tansu, postgres, database_url):
    clip_ids = harness.produce_clips(tansu.bootstrap, topics.input, 300)
    daemon.start()
    harness.wait_until(lambda: len(rows(database_url)) >= 30, "no clip stored", daemon)
    postgres.pause()
    try:
        time.sleep(5)  # writes are failing and retrying now
        started = time.monotonic()
        assert daemon.terminate(timeout_s=60) == 0
        # drain_timeout_s is 20 in these tests: the batches, then the side effects.
        assert time.monotonic() - started < 2 * 20 + 10
    finally:
        postgres.start()
    stored = rows(database_url)
    group = daemon.env["VIGIL_KAFKA_GROUP_ID"]
    committed = harness.committed(tansu.bootstrap, group, topics.input, 3)
    consumed = harness.read_topic(tansu.bootstrap, topics.input, expect=len(clip_ids))
    below = [json.loads(m.value())["clip_id"] for m in consumed
             if m.offset() < committed[m.partition()]]
    assert set(below) <= stored  # every committed message was stored first
    daemon.start()  # the rest is redelivered and scored
    final = wait_for_rows(database_url, set(clip_ids), daemon)
    assert daemon.terminate() == 0
    assert set(final) == set(clip_ids)
    assert harness.read_topic(tansu.bootstrap, topics.dlq, expect=0, timeout_s=5) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_killed_holding_a_batch_loses_and_dead_letters_nothing(
        daemon, topics, tansu, pipeline_server, database_url):
    clip_ids = harness.produce_clips(tansu.bootstrap, topics.input, 400)
    daemon.start()
    harness.wait_until(lambda: len(rows(database_url)) >= 20, "no clip stored", daemon)
    killed = []
    for model in ("audio_nsfw_hi", "audio_nsfw_ta", "audio_nsfw_multi"):
        killed.append(kill_a_worker(pipeline_server, model))
        time.sleep(1)
    stored = wait_for_rows(database_url, set(clip_ids), daemon)
    metrics = daemon.metrics()
    assert daemon.terminate() == 0
    wait_workers_back(pipeline_server, ["audio_nsfw_hi", "audio_nsfw_ta", "audio_nsfw_multi"])
    assert len(killed) == 3
    assert set(stored) == set(clip_ids)
    assert harness.read_topic(tansu.bootstrap, topics.dlq, expect=0, timeout_s=5) == []
    assert harness.handled(metrics) >= len(clip_ids)


@pytest.fixture
def vrt_daemon(tmp_path, tansu, torchserve, database_url, request):
    prefix = f"f{abs(hash(request.node.nodeid)) % 10**8}"
    topics = harness.Topics(input=f"{prefix}.created", output=f"{prefix}.scored")
    topics.create(tansu.bootstrap)
    media = tmp_path / "media"
    media.mkdir()
    daemon = harness.Daemon(workdir=tmp_path, pipeline="vrt", env={
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap,
        "VIGIL_KAFKA_GROUP_ID": f"{prefix}-group",
        "VIGIL_KAFKA_INPUT_TOPIC": topics.input, "VIGIL_KAFKA_OUTPUT_TOPIC": topics.output,
        **torchserve.client_env(), "VIGIL_RUNTIME_DRAIN_TIMEOUT_S": "20",
        "VIGIL_MEDIA_ALLOWED_SCHEMES": "file", "VIGIL_MEDIA_ALLOWED_DIRS": str(media),
        "DATABASE_URL": database_url})
    good = posts.good_posts(80, media)
    values = [(p["post_id"].encode(), json.dumps(p).encode()) for p in good]

    def produce(half: int) -> None:
        harness.produce(tansu.bootstrap, topics.input, values[half * 40:(half + 1) * 40])

    try:
        yield daemon, topics, {p["post_id"] for p in good}, produce
    finally:
        daemon.kill()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_vrt_waits_out_a_postgres_outage_and_a_killed_extractor_worker(
        vrt_daemon, tansu, torchserve, postgres, database_url):
    daemon, topics, post_ids, produce = vrt_daemon
    produce(0)
    daemon.start()
    scored = lambda: rows(database_url, "post_scores", "post_id")  # noqa: E731
    harness.wait_until(lambda: len(scored()) >= 5, "no post scored", daemon, timeout_s=180)
    kill_a_worker(torchserve, "clip_visual")
    postgres.pause()
    produce(1)  # these meet the outage whatever the first ones did
    try:
        paused = paused_during(daemon, "vrt", OUTAGE_S)
    finally:
        postgres.start()
    harness.wait_until(lambda: scored() >= post_ids, "posts never scored", daemon, timeout_s=300)
    assert daemon.terminate() == 0
    wait_workers_back(torchserve, ["clip_visual"])
    assert paused > 0
    assert harness.read_topic(tansu.bootstrap, topics.dlq, expect=0, timeout_s=5) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_routed_model_torchserve_does_not_serve_fails_at_start_up(daemon):
    daemon.env["VIGIL_ROUTING_LANGUAGES"] = "hi,ta,te"  # te is built, not served here
    daemon.env["VIGIL_TORCHSERVE_STARTUP_TIMEOUT_S"] = "60"
    daemon.start()
    assert daemon.process.wait(timeout=90) != 0
    assert "does not serve ['audio_nsfw_te 1.0']" in daemon.log()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_broker_that_cannot_be_reached_is_an_error_within_seconds(daemon):
    from scripts.services.process import free_port

    daemon.env["VIGIL_KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{free_port()}"  # nobody there
    daemon.start()
    try:
        harness.wait_until(lambda: "ERROR" in daemon.log() and "Kafka broker unreachable"
                   in daemon.log(), "no error logged", daemon, timeout_s=20)
    finally:
        daemon.kill()
