"""Min-view triage against a real broker and real databases: history endpoint and daemon."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from modelzoo.triage.calibrate import calibrate, write_outputs
from modelzoo.triage.data import generate_history
from orchestrator.clock import iso_utc
from orchestrator.db import open_store
from orchestrator.triage import HistoryRepository, TriagePolicy, history_api
from scripts import harness
from scripts.services.process import accepts_connections, free_port
from scripts.triage_world import encoded, make_world, views_events

pytestmark = pytest.mark.integration
NETS = (1000, 2000)
TOKEN = "history-token-for-the-tests"


@pytest.fixture(scope="module")
def policy_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    policy, report = calibrate(generate_history(20_000, seed=3))
    out = tmp_path_factory.mktemp("triage")
    write_outputs(policy, report, out)
    return out / "policy.json"


def expected_reviews(world, policy: TriagePolicy, reached: dict[str, int]) -> set[tuple[str, int]]:
    """The oracle: what the policy selects from the world's known features."""
    selected = set()
    for post_id, views in reached.items():
        score, posts, discards = world.features(post_id)
        risk = None if score is None else policy.risk("tree", score, posts, discards)
        for net in (n for n in NETS if views >= n):
            if any((post_id, earlier) in selected for earlier in NETS if earlier < net):
                continue
            if risk is None or risk >= policy.threshold("tree", net):
                selected.add((post_id, net))
    return selected


async def test_history_counts_only_the_window_and_is_served_over_http(database_url):
    world = make_world()
    port = free_port()
    async with open_store(database_url) as store:
        await world.write(store)
        repository = HistoryRepository(store, window_days=182, ttl_s=3600)
        runner = await history_api.start(repository, "127.0.0.1", port, TOKEN)
        try:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base) as anonymous:
                for headers in ({}, {"Authorization": "Bearer wrong"},
                                {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):
                    refused = await anonymous.get("/users/user-1/history", headers=headers)
                    assert refused.status_code == 401 and "Bearer" in refused.headers[
                        "WWW-Authenticate"]
                    assert "posts" not in refused.text
            async with httpx.AsyncClient(base_url=base, headers={
                    "Authorization": f"Bearer {TOKEN}"}) as client:
                for user, (posts, discards) in world.history.items():
                    body = (await client.get(f"/users/{user}/history")).json()
                    assert (body["posts"], body["discards"]) == (posts, discards), user
                unknown = (await client.get("/users/nobody/history")).json()
                assert (unknown["posts"], unknown["discards"]) == (0, 0)
                assert (await client.get(f"/users/{'x' * 257}/history")).status_code == 400
                assert (await client.get("/users/bad%00id/history")).status_code == 400
                assert (await client.get("/users/bad%0Aid/history")).status_code == 400
                # The longest id the pipelines store is one the endpoint answers for.
                longest = (await client.get(f"/users/{'x' * 256}/history")).json()
                assert (longest["posts"], longest["discards"]) == (0, 0)
                # Within the TTL the cached counts are served, even after new posts.
                await store.execute_many(
                    "INSERT INTO posts (post_id, user_id, created_at) VALUES (?, ?, ?)",
                    [("late", "user-1", "2099-01-01T00:00:00.000Z")])
                cached = (await client.get("/users/user-1/history")).json()
                assert cached["posts"] == world.history["user-1"][0]
        finally:
            await runner.cleanup()
    async with open_store(database_url) as store:  # a new repository reads the new post
        assert (await HistoryRepository(store).get("user-1")).posts == \
            world.history["user-1"][0] + 1


@pytest.fixture
def minview(tmp_path, tansu, database_url, policy_path, request):
    prefix = f"m{abs(hash(request.node.nodeid)) % 10**8}"
    topics = harness.Topics(input=f"{prefix}.views", output=f"{prefix}.review")
    topics.create(tansu.bootstrap)
    daemon = harness.Daemon(workdir=tmp_path, pipeline="minview", env={
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap,
        "VIGIL_KAFKA_GROUP_ID": f"{prefix}-group",
        "VIGIL_KAFKA_INPUT_TOPIC": topics.input,
        "VIGIL_KAFKA_OUTPUT_TOPIC": topics.output,
        "VIGIL_TRIAGE_POLICY_PATH": str(policy_path),
        "VIGIL_TRIAGE_HISTORY_PORT": str(free_port()),
        "VIGIL_TRIAGE_HISTORY_TOKEN": TOKEN,
        "DATABASE_URL": database_url,
    })
    try:
        yield daemon, topics
    finally:
        daemon.kill()


def wait_handled(daemon: harness.Daemon, count: int, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if harness.handled(daemon.metrics()) >= count:
            return
        time.sleep(0.3)
    pytest.fail(f"handled fewer than {count}\n{daemon.log()}")


def wait_listening(port: int, daemon: harness.Daemon, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not accepts_connections(port):
        if time.monotonic() > deadline:
            pytest.fail(f"nothing listens on {port}\n{daemon.log()}")
        time.sleep(0.2)


def enqueued_total(metrics: str) -> float:
    return sum(harness.metric_value(metrics, "vigil_review_enqueued_total", f'net="{n}"')
               for n in NETS)


def test_enqueues_exactly_the_selected_posts_once_per_net_across_a_restart(
        minview, tansu, database_url, policy_path):
    daemon, topics = minview
    world = make_world()
    world.seed(database_url)
    events, reached = views_events(world)
    bad = [(b"nope", json.dumps({"post_id": "post-unknown", "views": 5000}).encode()),
           (b"neg", json.dumps({"post_id": "post-1", "views": -3}).encode()),
           (b"junk", b"{views: 1000")]
    first, second = events[: len(events) // 2], events[len(events) // 2:]

    harness.produce(tansu.bootstrap, topics.input, encoded(first))
    daemon.start()
    daemon.wait_ready()
    history = f"http://127.0.0.1:{daemon.env['VIGIL_TRIAGE_HISTORY_PORT']}/users/user-1/history"
    wait_listening(int(daemon.env["VIGIL_TRIAGE_HISTORY_PORT"]), daemon)
    assert httpx.get(history, timeout=5).status_code == 401  # the live endpoint, no token
    answer = httpx.get(history, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert answer.status_code == 200 and answer.json()["user_id"] == "user-1"
    wait_handled(daemon, len(first))
    enqueued = enqueued_total(daemon.metrics())
    assert daemon.terminate() == 0
    # The restart sees the rest, the bad events, and every first-half event again.
    harness.produce(tansu.bootstrap, topics.input, encoded(second) + bad + encoded(first))
    daemon.start()
    daemon.wait_ready()
    wait_handled(daemon, len(second) + len(bad) + len(first))
    metrics = daemon.metrics()
    assert daemon.terminate() == 0

    expected = expected_reviews(world, TriagePolicy.load(policy_path), reached)
    assert 0 < len(expected) < sum(1 for v in reached.values() for n in NETS if v >= n)
    rows = harness.query(database_url, "SELECT post_id, net, reason FROM review_queue")
    assert {(p, n) for p, n, _ in rows} == expected and len(rows) == len(expected)
    unscored = [r for r in rows if world.features(r[0])[0] is None]
    assert unscored and all("no first-line score" in r[2] for r in unscored)
    review_events = harness.read_topic(tansu.bootstrap, topics.output, expect=len(expected))
    pairs = [(json.loads(m.value())["post_id"], json.loads(m.value())["net"])
             for m in review_events]
    assert sorted(pairs) == sorted(expected)  # once each: no duplicate events either
    decided = harness.query(database_url, "SELECT COUNT(*) FROM triage_decisions")[0][0]
    crossings = sum(1 for v in reached.values() for n in NETS if v >= n)
    assert decided == crossings
    assert enqueued + enqueued_total(metrics) == len(expected)  # counted once, not per run
    dead = harness.read_topic(tansu.bootstrap, topics.dlq, expect=3)
    reasons = {m.key(): dict(m.headers())["vigil-reason"].decode() for m in dead}
    assert reasons == {b"nope": "unknown_post", b"neg": "invalid_field", b"junk": "invalid_json"}


def test_a_jump_past_both_nets_decides_one_net_per_event(minview, tansu, database_url):
    daemon, topics = minview
    world = make_world()
    world.seed(database_url)
    jump = [{"post_id": post_id, "views": 2500, "at": iso_utc()}
            for post_id in world.triage_posts[:6]]
    forged = {"post_id": world.triage_posts[6], "views": 10**15, "at": iso_utc()}
    harness.produce(tansu.bootstrap, topics.input, encoded([*jump, forged]))
    daemon.start()
    daemon.wait_ready()
    wait_handled(daemon, len(jump) + 1)
    decided = harness.query(database_url, "SELECT post_id, net FROM triage_decisions")
    assert sorted(decided) == sorted((e["post_id"], 1000) for e in jump)
    # The next event of each post decides its second net, on data of its own.
    harness.produce(tansu.bootstrap, topics.input,
                    encoded([{**e, "views": 2600, "at": iso_utc()} for e in jump]))
    wait_handled(daemon, 2 * len(jump) + 1)
    assert daemon.terminate() == 0
    decided = harness.query(database_url, "SELECT post_id, net FROM triage_decisions")
    assert sorted(decided) == sorted((e["post_id"], net) for e in jump for net in NETS)
    letters = harness.read_topic(tansu.bootstrap, topics.dlq, expect=1)
    assert [dict(m.headers())["vigil-reason"] for m in letters] == [b"invalid_field"]
