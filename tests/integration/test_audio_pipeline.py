"""`vigil run audio` against a real broker, a real TorchServe and real databases."""

from __future__ import annotations

import base64
import json
import random
import time

import pytest

from scripts import clips
from scripts import harness

pytestmark = pytest.mark.integration


def stored_clip_ids(database_url: str) -> list[str]:
    try:
        return [row[0] for row in harness.query(database_url,
                                                "SELECT clip_id FROM audio_verdicts")]
    except Exception:  # noqa: BLE001 - the table appears once the daemon has started
        return []


def wait_for_rows(database_url: str, expected: set[str], daemon: harness.Daemon,
                  timeout_s: float = 180) -> list[str]:
    rows: list[str] = []

    def stored_all() -> bool:
        rows[:] = stored_clip_ids(database_url)
        return expected <= set(rows)

    harness.wait_until(stored_all, lambda: f"{len(expected - set(rows))} clips never stored",
                       daemon, timeout_s, interval_s=1)
    return rows


def wait_for_progress(database_url: str, at_least: int, daemon: harness.Daemon) -> int:
    """Block until ``at_least`` clips are stored: faults land mid-run on a fast machine too."""
    stored = 0

    def enough() -> bool:
        nonlocal stored
        stored = len(stored_clip_ids(database_url))
        return stored >= at_least

    harness.wait_until(enough, f"fewer than {at_least} clips stored", daemon, interval_s=0.05)
    return stored


def test_300_clips_over_3_partitions_and_3_languages(daemon, topics, tansu, database_url):
    clip_ids = harness.produce_clips(tansu.bootstrap, topics.input, 300)
    daemon.env["VIGIL_DRIFT_MIN_SCORES"] = "20"
    daemon.start()
    rows = wait_for_rows(database_url, set(clip_ids), daemon)
    metrics = daemon.metrics()
    assert daemon.terminate() == 0

    assert sorted(rows) == sorted(clip_ids)  # exactly one row per clip
    verdicts = harness.read_topic(tansu.bootstrap, topics.output, expect=300)
    counts = harness.verdict_counts(verdicts)
    assert set(counts) == set(clip_ids)
    events = [json.loads(m.value()) for m in verdicts]
    models = {e["language"]: e["model"] for e in events}
    assert models == {"hi": "audio_nsfw_hi", "ta": "audio_nsfw_ta", "xx": "audio_nsfw_multi"}
    assert all(0 <= e["score"] <= 1 and "audio_b64" not in e for e in events)
    assert all(e["stream_id"].startswith("stream-") for e in events)
    assert all(e["extra"] == {} for e in events)  # the input had no other fields
    # Some batch reached 8 items: fewer batches fall at or under 7 than there were batches.
    total = harness.metric_value(metrics, "vigil_batch_size_count")
    at_most_7 = harness.metric_value(metrics, "vigil_batch_size_bucket", 'le="7.0"')
    assert total > 0 and at_most_7 < total
    assert harness.metric_value(metrics, "vigil_messages_consumed_total",
                                'pipeline="audio"') >= 300
    # Score drift: every score observed per model version and routed language, and a PSI
    # against the reference the build saved in the catalogue.
    hi = {"model": "audio_nsfw_hi", "version": "1.0", "language": "hi"}
    assert harness.sample_value(metrics, "vigil_score_count", pipeline="audio", **hi) == \
        sum(1 for e in events if e["language"] == "hi")
    assert harness.sample_value(metrics, "vigil_score_psi", **hi) >= 0
    assert harness.sample_value(metrics, "vigil_score_count", pipeline="audio",
                                model="audio_nsfw_multi", version="1.0", language="*") > 0


def test_sigkill_three_times_loses_no_clip(daemon, topics, tansu, database_url):
    clip_ids = harness.produce_clips(tansu.bootstrap, topics.input, 500)
    rng = random.Random(11)
    stored = 0
    for _ in range(3):
        daemon.start()
        stored = wait_for_progress(database_url, stored + 1, daemon)
        time.sleep(rng.uniform(0, 1))
        daemon.kill()
    daemon.start()
    daemon.wait_ready()
    rows = wait_for_rows(database_url, set(clip_ids), daemon, timeout_s=300)
    assert daemon.terminate() == 0
    assert set(rows) == set(clip_ids) and len(rows) == len(clip_ids)
    counts = harness.verdict_counts(harness.read_topic(tansu.bootstrap, topics.output, expect=500))
    assert set(counts) == set(clip_ids)  # duplicates allowed, losses not


def test_sigterm_drains_commits_and_a_restart_reprocesses_nothing(daemon, topics, tansu,
                                                                  database_url):
    clip_ids = harness.produce_clips(tansu.bootstrap, topics.input, 400)
    daemon.start()
    daemon.wait_ready()
    wait_for_progress(database_url, 1, daemon)  # mid-run: some clips scored, some in flight
    started = time.monotonic()
    assert daemon.terminate(timeout_s=40) == 0
    assert time.monotonic() - started < 30  # drain_timeout_s 20 plus the commit
    group = daemon.env["VIGIL_KAFKA_GROUP_ID"]
    committed_first = harness.committed(tansu.bootstrap, group, topics.input, 3)
    scored_first = len(harness.read_topic(tansu.bootstrap, topics.output, expect=1, idle_s=2))
    # Everything committed was scored before the stop.
    assert sum(max(0, o) for o in committed_first) <= scored_first

    assert scored_first < 400  # the stop came mid-run
    daemon.start()
    daemon.wait_ready()
    wait_for_rows(database_url, set(clip_ids), daemon)
    assert daemon.terminate() == 0
    total = len(harness.read_topic(tansu.bootstrap, topics.output, expect=400))
    # The restart scored only what was not committed: no committed clip twice.
    assert total - scored_first == 400 - sum(max(0, o) for o in committed_first)
    # Every message committed (offsets start at 0; Tansu's watermarks lag, so count instead).
    assert sum(harness.committed(tansu.bootstrap, group, topics.input, 3)) == 400


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_torchserve_outage_pauses_and_resumes_without_loss(daemon, topics, tansu, database_url,
                                                          pipeline_server):
    clip_ids = harness.produce_clips(tansu.bootstrap, topics.input, 400)
    daemon.start()
    wait_for_progress(database_url, 1, daemon)
    pipeline_server.stop()
    paused = 0.0

    def intake_paused() -> bool:
        nonlocal paused
        assert daemon.process.poll() is None  # no crash
        paused = harness.metric_value(daemon.metrics(), "vigil_paused_partitions",
                                      'pipeline="audio"')
        return paused > 0

    harness.wait_until(intake_paused, "intake never paused", daemon, timeout_s=40)
    pipeline_server.start(models=["audio_nsfw_hi", "audio_nsfw_ta", "audio_nsfw_multi"])
    rows = wait_for_rows(database_url, set(clip_ids), daemon)
    metrics = daemon.metrics()
    assert daemon.terminate() == 0
    assert set(rows) == set(clip_ids)
    assert paused > 0  # intake was paused during the outage
    assert harness.metric_value(metrics, "vigil_retries_total", 'pipeline="audio"') > 0
    assert harness.read_topic(tansu.bootstrap, topics.dlq, expect=0, timeout_s=5) == []


def _bad_messages(media_dir) -> tuple[list[tuple[str, bytes | None, bytes]], object]:
    """(expected reason, key, value) for each kind of bad message, and a good media file."""
    good = harness.clip_message(0)
    big = media_dir / "big.wav"
    big.write_bytes(clips.clip("wav", seconds=15))
    small = media_dir / "ok.wav"
    small.write_bytes(clips.clip("wav", seconds=1))

    def message(**changes):
        value = {**good, **changes}
        return json.dumps({k: v for k, v in value.items() if v is not None}).encode()

    return [
        ("invalid_json", b"k1", b"{not json"),
        ("invalid_json", b"k2", b"\xff\xfe\x00binary"),
        ("invalid_json", b"k3", b"[1, 2, 3]"),
        ("invalid_json", None, b""),
        ("missing_field", b"k5", message(clip_id=None)),
        ("missing_field", b"k6", message(language=None)),
        ("missing_field", b"k7", message(audio_b64=None)),
        ("invalid_field", b"k8", message(stream_id=42)),
        ("invalid_field", b"k9", message(audio_b64="%%%not base64%%%")),
        ("invalid_field", b"k10", message(created_at="yesterday")),
        ("undecodable_media", b"k11", message(audio_b64=base64.b64encode(b"noise" * 99).decode())),
        ("media_not_allowed", b"k12", message(audio_b64=None, audio_url="http://media.example.com/a.wav")),
        ("media_not_allowed", b"k13", message(audio_b64=None, audio_url="https://evil.example.org/a.wav")),
        ("media_not_allowed", b"k14", message(audio_b64=None, audio_url="file:///etc/passwd")),
        ("media_too_large", b"k15", message(audio_b64=None, audio_url=big.as_uri())),
        ("media_unavailable", b"k16", message(audio_b64=None, audio_url=(media_dir / "gone.wav").as_uri())),
        ("media_too_large", b"k17", message(audio_b64=base64.b64encode(b"\0" * 500_000).decode())),
        # A poison pill: once a RecursionError that stopped the daemon on every restart.
        ("invalid_json", b"k18", b"[" * 20_000 + b"]" * 20_000),
        ("invalid_json", b"k19", message()[:-1] + b', "x": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"),
        # A moderation bypass: NaN or Inf samples once came out as a NULL score, label safe.
        ("undecodable_media", b"k20", message(audio_b64=base64.b64encode(
            clips.non_finite(float("nan"))).decode())),
        ("undecodable_media", b"k21", message(audio_b64=base64.b64encode(
            clips.non_finite(float("-inf"), rate=44_100)).decode())),
    ], small


def test_bad_messages_go_to_the_dlq_with_their_reason(daemon, topics, tansu, database_url):
    bad, small_file = _bad_messages(daemon.workdir / "media")
    good = [harness.clip_message(i) for i in range(40)]
    good.append({**harness.clip_message(40), "audio_b64": None, "audio_url": small_file.as_uri()})
    values = []
    for index, message in enumerate(good):
        values.append((message["clip_id"].encode(), json.dumps(message).encode()))
        if index < len(bad):
            values.append(bad[index][1:])
    harness.produce(tansu.bootstrap, topics.input, values)
    # Bad clips refused part by part; batches of 2 keep a worker's batch of 8 requests
    # (16 clips at 3 s each at worst) inside the request timeout.
    daemon.env |= {"VIGIL_TORCHSERVE_BATCH_REQUESTS": "true", "VIGIL_BATCH_MAX_SIZE": "2",
                   "VIGIL_TORCHSERVE_TIMEOUT_S": "60"}
    daemon.start()
    wait_for_rows(database_url, {m["clip_id"] for m in good}, daemon)
    dead = harness.read_topic(tansu.bootstrap, topics.dlq, expect=len(bad))
    assert daemon.terminate() == 0

    assert len(dead) == len(bad)
    by_value = {}
    for letter in dead:
        headers = dict(letter.headers())
        assert headers["vigil-original-topic"].decode() == topics.input
        assert int(headers["vigil-original-offset"]) >= 0
        assert {"vigil-error-class", "vigil-error-message", "vigil-original-partition",
                "vigil-attempts"} <= set(headers)
        assert headers["vigil-reason"] == headers["vigil-error-reason"]
        assert headers["vigil-attempts"] == b"1"  # refusals are not retried
        by_value[letter.value()] = headers["vigil-reason"].decode()
    for reason, key, value in bad:
        assert by_value[value] == reason, (reason, value[:80])
    assert len(bad) >= 15 and len({reason for reason, _, _ in bad}) >= 7
    scores = [row[0] for row in harness.query(database_url, "SELECT score FROM audio_verdicts")]
    assert all(score is not None and 0 <= score <= 1 for score in scores)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_second_daemon_joining_mid_run_rebalances_without_loss(daemon, topics, tansu,
                                                                  database_url, tmp_path):
    clip_ids = harness.produce_clips(tansu.bootstrap, topics.input, 400)
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    second = harness.Daemon(workdir=second_dir, env=daemon.env)
    daemon.start()
    daemon.wait_ready()
    wait_for_progress(database_url, 1, daemon)
    try:
        second.start()  # the group rebalances: the first daemon's partitions are revoked
        second.wait_ready()
        harness.wait_until(lambda: "assigned [(" in second.log()
                           and daemon.log().count("assigned [(") >= 2,
                           f"no rebalance\n{second.log()}", daemon, timeout_s=60, interval_s=0.2)
        rows = wait_for_rows(database_url, set(clip_ids), daemon)
        assert second.terminate() == 0
    finally:
        second.kill()
    assert daemon.terminate() == 0
    assert set(rows) == set(clip_ids) and len(rows) == len(clip_ids)
    group = daemon.env["VIGIL_KAFKA_GROUP_ID"]
    assert sum(harness.committed(tansu.bootstrap, group, topics.input, 3)) == 400
