"""Hostile input among good input, on real services: TorchServe workers held to the memory the
Kubernetes manifests give them, the real broker, SQLite. No message may stop a partition or
kill a worker; every good item beside the bad ones is scored within 30 s; every bad one is a
dead letter whose reason says what is wrong with it, not "try again"."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml
from confluent_kafka import Producer

from modelzoo import families
from modelzoo.manifest import ArchiveSpec
from scripts import clips, harness, hostile, posts
from scripts.services.process import REPO_ROOT
from scripts.services.torchserve import TorchServe

pytestmark = pytest.mark.integration
GOOD_WITHIN_S = 30
KEY_BYTES = 999_700  # a default producer takes it; its dead letter, headers and all, not
# Reasons that say the outage was someone else's, inviting a replay of what is really bad.
TRANSIENT = {"model_timeout", "model_unavailable", "media_fetch_failed", "internal_error"}
FORGED = "CRITICAL orchestrator.flow.spine: forged"


def pod_memory_bytes(pod: str) -> int:
    """The TorchServe container's memory limit in ``deploy/k8s/<pod>.yaml``."""
    units = {"Gi": 2**30, "Mi": 2**20}
    for document in yaml.safe_load_all((REPO_ROOT / "deploy/k8s" / f"{pod}.yaml").read_text()):
        if (document or {}).get("kind") != "Deployment":
            continue
        for container in document["spec"]["template"]["spec"]["containers"]:
            if container["name"] == "torchserve":
                limit = container["resources"]["limits"]["memory"]
                return int(limit[:-2]) * units[limit[-2:]]
    raise LookupError(f"no torchserve container in deploy/k8s/{pod}.yaml")


@contextlib.contextmanager
def limited_workers(server: TorchServe, manifest: list[ArchiveSpec], names: list[str],
                    pod: str) -> Iterator[dict[str, list[int]]]:
    """Each worker of ``names`` may hold its share of the pod's memory limit (the pod's
    limit over the workers it runs, RLIMIT_DATA); yields their pids, restores on leaving."""
    served_together = families.workers_served_together(manifest)
    pids = {name: sorted(w["pid"] for w in server.describe(name)["workers"]) for name in names}
    previous = {}
    for name, workers in pids.items():
        share = pod_memory_bytes(pod) // served_together[name]
        for pid in workers:
            process = psutil.Process(pid)
            previous[pid] = process.rlimit(psutil.RLIMIT_DATA)
            process.rlimit(psutil.RLIMIT_DATA, (share, previous[pid][1]))
    try:
        yield pids
    finally:
        for pid, limits in previous.items():
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).rlimit(psutil.RLIMIT_DATA, limits)


def produce_to(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]],
               partition: int = 0) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for key, value in records:
        producer.produce(topic, value=value, key=key, partition=partition)
        producer.poll(0)
    assert producer.flush(30) == 0


def inline(clip_id: str, audio: bytes, **fields) -> dict:
    return {**harness.clip_message(0), "clip_id": clip_id, "stream_id": "s-hostile",
            "audio_b64": base64.b64encode(audio).decode(), **fields}


def dead_letter_reasons(bootstrap: str, topic: str, expect: int) -> dict[str, str]:
    letters = harness.read_topic(bootstrap, topic, expect=expect)
    reasons = {}
    for letter in letters:
        headers = dict(letter.headers())
        if letter.key() is None:
            omitted = headers["vigil-key-omitted"].decode()
            assert omitted.startswith(f"{KEY_BYTES} bytes sha256:"), omitted
            reasons["huge-key"] = headers["vigil-reason"].decode()
        else:
            reasons[letter.key().decode()] = headers["vigil-reason"].decode()
        assert b"\n" not in headers["vigil-error-message"]
    return reasons


def test_hostile_clips_stop_no_partition_and_kill_no_worker(daemon, topics, tansu,
                                                           pipeline_server, manifest,
                                                           database_url):
    good = [harness.clip_message(i) for i in range(40)]
    good.append(inline("odd-rate", hostile.odd_rate_wav(44_101)))  # scored, cheaply
    good.append(inline("steered", clips.clip("wav", seconds=1), action="allow", label="safe"))
    bad = {
        "flac-bomb": (inline("flac-bomb", hostile.flac_bomb()), "media_too_large"),
        "channels": (inline("channels", hostile.lying_wav(channels=9, declared_frames=10**6)),
                     "media_too_large"),
        "backslash": ({**inline("backslash", b""), "audio_b64": None,
                       "audio_url": "https://evil\\@media.example.com/x.wav"},
                      "media_not_allowed"),
        "newline": ({**inline("newline", b""), "audio_b64": None,
                     "audio_url": f"https://media.example.com/x.wav\n{FORGED} entry"},
                    "media_not_allowed"),
        "year-10000": (inline("year-10000", b"RIFF",
                              created_at="9999-12-31T23:59:59-01:00"), "invalid_field"),
    }
    records = [(m["clip_id"].encode(), json.dumps(m).encode()) for m in good[:20]]
    records.append((b"k" * KEY_BYTES, json.dumps({"clip_id": "huge-key", "stream_id": "s",
                                                  "language": "hi", "audio_b64": "AAAA"}).encode()))
    records += [(key.encode(), json.dumps(message).encode())
                for key, (message, _) in bad.items()]
    records.append((b"duplicate", b'{"clip_id": "a", "stream_id": "s", "language": "hi", '
                                  b'"audio_b64": "AAAA", "clip_id": "b"}'))
    records += [(m["clip_id"].encode(), json.dumps(m).encode()) for m in good[20:]]
    produce_to(tansu.bootstrap, topics.input, records)
    names = ["audio_nsfw_hi", "audio_nsfw_ta", "audio_nsfw_multi"]
    with limited_workers(pipeline_server, manifest, names, "audio") as pids:
        daemon.start()
        daemon.wait_ready()
        started = time.monotonic()
        wanted = {m["clip_id"] for m in good}
        harness.wait_until(lambda: wanted <= stored(database_url), "good clips not scored",
                           daemon, timeout_s=GOOD_WITHIN_S)
        scored_s = time.monotonic() - started
        reasons = dead_letter_reasons(tansu.bootstrap, topics.dlq, expect=len(bad) + 2)
        assert daemon.process.poll() is None  # nothing stopped it
        assert daemon.terminate() == 0
        after = {n: sorted(w["pid"] for w in pipeline_server.describe(n)["workers"])
                 for n in names}
    assert after == pids  # no worker died
    assert scored_s < GOOD_WITHIN_S
    assert reasons == {"huge-key": "invalid_field", "duplicate": "invalid_json",
                       **{key: reason for key, (_, reason) in bad.items()}}
    group = daemon.env["VIGIL_KAFKA_GROUP_ID"]
    # The partition moved past every message, the 1 MB key among them.
    assert harness.committed(tansu.bootstrap, group, topics.input, 3)[0] == len(records)
    events = {json.loads(m.value())["clip_id"]: json.loads(m.value())
              for m in harness.read_topic(tansu.bootstrap, topics.output, expect=len(good))}
    assert events["steered"]["extra"] == {"action": "allow", "label": "safe"}
    assert "action" not in events["steered"]
    log = daemon.log()
    assert FORGED in log and f"\n{FORGED}" not in log  # logged, never as a line of its own


def stored(database_url: str) -> set[str]:
    try:
        return {row[0] for row in harness.query(database_url,
                                                "SELECT clip_id FROM audio_verdicts")}
    except Exception:  # noqa: BLE001 - the table appears once the daemon has started
        return set()


VRT_ARCHIVES = ["clip_visual", "xlmr_text", "vggish_audio", "vrt_fusion"]


def test_hostile_posts_end_as_their_own_refusals_and_kill_no_worker(
        tmp_path: Path, tansu, torchserve, manifest, database_url, request):
    prefix = f"h{abs(hash(request.node.nodeid)) % 10**8}"
    topics = harness.Topics(input=f"{prefix}.created", output=f"{prefix}.scored")
    topics.create(tansu.bootstrap)
    media = tmp_path / "media"
    media.mkdir()
    files = {"thin.png": hostile.thin_png(), "scans.jpg": hostile.scan_bomb_jpeg(),
             "frames.gif": hostile.many_frames_gif(), "bomb.flac": hostile.flac_bomb()}
    for name, body in files.items():
        (media / name).write_bytes(body)
    good = posts.good_posts(8, media)
    good += [_post("thin", image_url=(media / "thin.png").as_uri()),
             _post("frames", image_url=(media / "frames.gif").as_uri())]
    bad = {"scans": (_post("scans", image_url=(media / "scans.jpg").as_uri()),
                     {"media_too_large"}),
           # Both extractors refuse it (no video stream; a 655,350 Hz header).
           "bomb": (_post("bomb", video_url=(media / "bomb.flac").as_uri()),
                    {"media_too_large", "undecodable_media"}),
           "year-10000": (_post("year-10000", text="hi",
                                created_at="9999-12-31T23:59:59-01:00"), {"invalid_field"}),
           "invisible": (_post("invisible", text="\u200b\u200d\ufeff"), {"missing_field"})}
    values = [(p["post_id"].encode(), json.dumps(p).encode())
              for p in [*good, *(post for post, _ in bad.values())]]
    harness.produce(tansu.bootstrap, topics.input, values)
    daemon = harness.Daemon(workdir=tmp_path, pipeline="vrt", env={
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap,
        "VIGIL_KAFKA_GROUP_ID": f"{prefix}-group",
        "VIGIL_KAFKA_INPUT_TOPIC": topics.input, "VIGIL_KAFKA_OUTPUT_TOPIC": topics.output,
        **torchserve.client_env(), "VIGIL_MEDIA_ALLOWED_SCHEMES": "file",
        "VIGIL_MEDIA_ALLOWED_DIRS": str(media), "DATABASE_URL": database_url})
    try:
        with limited_workers(torchserve, manifest, VRT_ARCHIVES, "vrt") as pids:
            daemon.start()
            daemon.wait_ready()
            started = time.monotonic()
            wanted = {p["post_id"] for p in good}
            harness.wait_until(lambda: wanted <= scored_posts(database_url),
                               "good posts not scored", daemon, timeout_s=GOOD_WITHIN_S)
            scored_s = time.monotonic() - started
            letters = harness.read_topic(tansu.bootstrap, topics.dlq, expect=len(bad))
            assert daemon.terminate() == 0
            after = {n: sorted(w["pid"] for w in torchserve.describe(n)["workers"])
                     for n in VRT_ARCHIVES}
    finally:
        daemon.kill()
    assert after == pids
    assert scored_s < GOOD_WITHIN_S
    reasons = {m.key().decode(): dict(m.headers())["vigil-reason"].decode() for m in letters}
    assert set(reasons) == set(bad)
    for post_id, (_, expected) in bad.items():
        assert reasons[post_id] in expected and reasons[post_id] not in TRANSIENT, post_id


def _post(post_id: str, **fields) -> dict:
    return {"post_id": post_id, "user_id": "user-h", "created_at": "2026-11-28T10:00:00Z",
            **fields}


def scored_posts(database_url: str) -> set[str]:
    try:
        return {row[0] for row in harness.query(database_url, "SELECT post_id FROM post_scores")}
    except Exception:  # noqa: BLE001 - the table appears once the daemon has started
        return set()
