"""A real Prometheus, with the shipped scrape config and alert rules, scraping a live stack
(TorchServe, the three daemons, the broker): every dashboard query must be valid PromQL and
return data once traffic has flowed."""

from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path

import pytest

from modelzoo.triage.calibrate import calibrate, write_outputs
from modelzoo.triage.data import generate_history
from orchestrator.clock import iso_utc
from scripts import harness, posts
from scripts.services.process import REPO_ROOT, free_port
from scripts.services.prometheus import Prometheus
from scripts.triage_world import encoded, make_world, views_events

pytestmark = pytest.mark.integration
DASHBOARDS = sorted((REPO_ROOT / "deploy" / "grafana").glob("*.json"))


def start_daemon(workdir: Path, pipeline: str, prefix: str, tansu, env: dict, name: str = ""
                 ) -> tuple[harness.Daemon, harness.Topics]:
    name = name or pipeline
    topics = harness.Topics(input=f"{prefix}.{name}.in", output=f"{prefix}.{name}.out")
    topics.create(tansu.bootstrap)
    folder = workdir / name
    folder.mkdir()
    daemon = harness.Daemon(workdir=folder, pipeline=pipeline, env={
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap,
        "VIGIL_KAFKA_GROUP_ID": f"{prefix}-{name}",
        "VIGIL_KAFKA_INPUT_TOPIC": topics.input, "VIGIL_KAFKA_OUTPUT_TOPIC": topics.output,
        "DATABASE_URL": f"sqlite:///{folder / 'vigil.db'}", **env})
    daemon.start()
    return daemon, topics


@pytest.fixture
def live_stack(tmp_path, tansu, torchserve, versions, request):
    prefix = f"d{abs(hash(request.node.nodeid)) % 10**8}"
    media = tmp_path / "media"
    media.mkdir()
    policy, report = calibrate(generate_history(20_000, seed=5))
    write_outputs(policy, report, tmp_path / "triage")
    serving = {**torchserve.client_env(),
               "VIGIL_MEDIA_ALLOWED_SCHEMES": "https,file", "VIGIL_MEDIA_ALLOWED_DIRS": str(media),
               "VIGIL_ROUTING_LANGUAGES": "hi,ta"}
    daemons = {
        # A PSI from the first few scores, so the drift panel has data.
        # Half the unflagged clips audited, so the audit estimates have decisions to show.
        "audio": start_daemon(tmp_path, "audio", prefix, tansu,
                              {**serving, "VIGIL_DRIFT_MIN_SCORES": "5",
                               "VIGIL_QUALITY_AUDIT_RATE": "0.5"}),
        "vrt": start_daemon(tmp_path, "vrt", prefix, tansu, serving),
        "minview": start_daemon(tmp_path, "minview", prefix, tansu, {
            "VIGIL_TRIAGE_POLICY_PATH": str(tmp_path / "triage" / "policy.json"),
            "VIGIL_TRIAGE_HISTORY_PORT": str(free_port()),
            "VIGIL_TRIAGE_HISTORY_TOKEN": "dashboard-test-token"}),
        # Joins decisions to the audio daemon's verdicts: the same database.
        "quality": start_daemon(tmp_path, "quality", prefix, tansu, {
            **torchserve.client_env(), "VIGIL_QUALITY_MIN_DECISIONS": "5",
            "VIGIL_QUALITY_AUDIT_EVERY_S": "1",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'audio' / 'vigil.db'}"}),
        # Rolls out the catalogue's candidate of audio_nsfw_hi (scores pushed up), so the
        # rollout panels have a shadow, its gates and a rollback to show.
        "rollout": start_daemon(tmp_path, "audio", prefix, tansu, {
            **versions.client_env(), "VIGIL_ROUTING_LANGUAGES": "hi",
            "VIGIL_ROUTING_FALLBACK": "false", "VIGIL_ROLLOUT_SHADOW_SAMPLE": "1",
            "VIGIL_ROLLOUT_MIN_SAMPLES": "5"}, name="rollout"),
    }
    config_dir = tmp_path / "prometheus"
    shutil.copytree(REPO_ROOT / "deploy" / "prometheus", config_dir)
    (config_dir / "targets").mkdir()
    (config_dir / "targets" / "vigil.json").write_text(json.dumps(
        [{"targets": [f"127.0.0.1:{d.metrics_port}"], "labels": {"daemon": name}}
         for name, (d, _) in daemons.items()]))
    (config_dir / "targets" / "torchserve.json").write_text(json.dumps(
        [{"targets": [f"127.0.0.1:{torchserve.metrics_port}"]}]))
    prometheus = Prometheus(workdir=tmp_path / "prom", config=config_dir / "prometheus.yml",
                            port=free_port())
    try:
        for daemon, _ in daemons.values():
            daemon.wait_ready()
        prometheus.start()
        yield daemons, prometheus, media
    finally:
        prometheus.stop()
        for daemon, _ in daemons.values():
            daemon.kill()


def send_traffic(daemons: dict, tansu, media: Path, wave: int) -> list[str]:
    """Good and bad messages for every daemon fed by producers; returns the clip ids."""
    audio = daemons["audio"][1].input
    clip_ids = harness.produce_clips(tansu.bootstrap, audio, 24, start=100 * wave)
    undecodable = {**harness.clip_message(100 * wave + 99), "clip_id": f"garbage-{wave}",
                   "audio_b64": base64.b64encode(b"not audio" * 40).decode()}
    harness.produce(tansu.bootstrap, audio,  # one bad before, one at TorchServe (a 415)
                    [(None, b"{not json"), (None, json.dumps(undecodable).encode())])
    wave_media = media / f"wave{wave}"
    wave_media.mkdir()
    vrt_posts = posts.good_posts(8, wave_media, created_at=iso_utc())
    harness.produce(tansu.bootstrap, daemons["vrt"][1].input,
                    [(p["post_id"].encode(), json.dumps(p).encode()) for p in vrt_posts]
                    + [(b"bad", json.dumps({"post_id": "x", "user_id": "u"}).encode())])
    hindi = [harness.clip_message(100 * wave + index, language="hi") for index in range(16)]
    harness.produce(tansu.bootstrap, daemons["rollout"][1].input,
                    [(m["clip_id"].encode(), json.dumps(m).encode()) for m in hindi])
    minview, topics = daemons["minview"]
    world = make_world(seed=wave)
    world.seed(minview.env["DATABASE_URL"])
    events, _ = views_events(world, seed=wave)
    harness.produce(tansu.bootstrap, topics.input,
                    encoded(events) + [(b"neg", json.dumps({"post_id": "post-1",
                                                            "views": -1}).encode())])
    return clip_ids


def send_decisions(daemons: dict, tansu, clip_ids: list[str]) -> None:
    """Moderators' decisions on scored clips (every third discarded), and a malformed one."""
    decided_at = iso_utc()  # after the clips were scored
    decisions = [{"item_id": clip, "kind": "clip", "moderator_id": "m1",
                  "decision": "discard" if index % 3 == 0 else "keep", "decided_at": decided_at}
                 for index, clip in enumerate(clip_ids)]
    harness.produce(tansu.bootstrap, daemons["quality"][1].input,
                    [(d["item_id"].encode(), json.dumps(d).encode()) for d in decisions]
                    + [(b"bad", b'{"item_id": "x", "kind": "clip", "decision": "ban"}')])


def test_every_dashboard_query_returns_data_from_a_live_stack(live_stack, tansu):
    daemons, prometheus, media = live_stack
    for wave in (1, 2):
        before = {name: harness.handled(d.metrics()) for name, (d, _) in daemons.items()}
        clip_ids = send_traffic(daemons, tansu, media, wave)
        harness.wait_until(lambda: all(harness.handled(d.metrics()) > before[name]
                                       for name, (d, _) in daemons.items() if name != "quality"),
                           f"wave {wave} handled", timeout_s=180)
        harness.wait_until(lambda: harness.handled(daemons["audio"][0].metrics())
                           >= before["audio"] + len(clip_ids) + 2,
                           f"wave {wave}: every clip scored", timeout_s=180)
        send_decisions(daemons, tansu, clip_ids)
        harness.wait_until(lambda: harness.handled(daemons["quality"][0].metrics())
                           >= before["quality"] + len(clip_ids) + 1,
                           f"wave {wave}: decisions handled", timeout_s=180)
        time.sleep(16)  # one scrape interval between the waves, so rates see both
    harness.wait_until(lambda: prometheus.query('min(count_over_time(up[5m])) >= 3'),
                       "three scrapes of every target", timeout_s=180)
    targets = {(t["metric"]["job"], t["value"][1]) for t in prometheus.query("up")}
    assert targets == {("vigil", "1"), ("torchserve", "1")}, prometheus.query("up")
    assert len(prometheus.query("up")) == 6  # five daemons and TorchServe

    empty = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                if not prometheus.query(target["expr"]):  # raises on invalid PromQL
                    empty.append(f"{path.name}: {panel['title']}: {target['expr']}")
    assert not empty, "\n".join(empty)

    rules = [rule for group in prometheus_rules(prometheus) for rule in group["rules"]]
    assert len(rules) == 9 and all(rule["health"] == "ok" for rule in rules), rules


def prometheus_rules(prometheus: Prometheus) -> list[dict]:
    import httpx

    return httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
