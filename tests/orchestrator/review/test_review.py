"""The review page's parts over a real SQLite file: claims two moderators cannot share,
queues oldest first without what is decided or held, decisions that wait out their undo
delay and are sent once, and requests refused without a moderator or a CSRF token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from orchestrator.clock import iso_from_epoch
from orchestrator.config import MediaConfig, ReviewConfig
from orchestrator.db import upsert
from orchestrator.db.stores import SqliteStore
from orchestrator.metrics import Metrics
from orchestrator.review import Authenticator, Claims, Decision, PendingDecisions, ReviewItems
from orchestrator.review.web import SECURITY_HEADERS, Services, make_app, media_type
from orchestrator.serving import MediaFetcher
from orchestrator.triage import HistoryRepository

NOW = 1_790_000_000.0
TOKENS = {"ana": "token-of-ana-0123456789", "bo": "token-of-bo-0123456789"}
CONFIG = ReviewConfig(tokens=TOKENS, session_key="k" * 32, clip_sla_s=600, undo_s=5)


class Produced:
    """What a producer was asked to send (the broker is tested in the browser test)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict, bytes]] = []

    async def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.sent.append((topic, json.loads(value), key))


@pytest.fixture
async def store(tmp_path: Path):
    async with SqliteStore(str(tmp_path / "v.db")) as opened:
        await upsert(opened, "review_samples", [
            {"item_id": f"c{index}", "kind": "clip", "model": "m", "version": "1", "language":
             "hi", "score": 0.9, "threshold": 0.5, "flagged": 1, "inclusion_probability": 1.0,
             "sampled_at": iso_from_epoch(NOW - 100 * (3 - index)),
             "media_url": None} for index in range(3)])
        yield opened


async def test_a_claim_is_one_moderators_until_it_expires(store):
    claims = Claims(store, claim_s=60)
    assert await claims.claim("clip", "c0", "ana", NOW)
    assert not await claims.claim("clip", "c0", "bo", NOW + 30)
    assert await claims.claim("clip", "c0", "ana", NOW + 50)  # renewed
    assert not await claims.claim("clip", "c0", "bo", NOW + 100)
    assert await claims.claim("clip", "c0", "bo", NOW + 111)  # expired


async def test_a_queue_is_oldest_first_without_decided_or_held_items(store):
    items = ReviewItems(store, CONFIG)
    decisions = PendingDecisions(store, Produced(), "review.decisions", undo_s=5)
    await Claims(store, 60).claim("clip", "c1", "bo", NOW)
    await decisions.decide(Decision("clip", "c0", "ana", "keep", None), NOW)
    for_ana = await items.queue("clips", "ana", NOW)
    assert [e.item_id for e in for_ana] == ["c2"]
    assert for_ana[0].seconds_left == pytest.approx(600 - 100)
    assert [e.item_id for e in await items.queue("clips", "bo", NOW)] == ["c1", "c2"]


async def test_a_queue_starts_at_its_floor_below_which_everything_is_decided(store):
    items = ReviewItems(store, CONFIG)
    await upsert(store, "review_samples", [
        {"item_id": "old", "kind": "clip", "model": "m", "version": "1", "language": "hi",
         "score": 0.9, "threshold": 0.5, "flagged": 1, "inclusion_probability": 1.0,
         "sampled_at": iso_from_epoch(NOW - 10 * 3600), "media_url": None}])
    await upsert(store, "review_decisions", [
        {"item_id": item, "kind": "clip", "decision": "keep", "moderator_id": "m",
         "decided_at": iso_from_epoch(NOW)} for item in ("old", "c0")])
    await items.advance_floors(NOW)
    # c0 is decided, c1 is not: the floor is an hour under c1, above the old decided item.
    assert items._floors["clips"] == iso_from_epoch(NOW - 200 - 3600)
    assert [e.item_id for e in await items.queue("clips", "ana", NOW)] == ["c1", "c2"]
    # A pending decision (undoable) does not move the floor past its item.
    await PendingDecisions(store, Produced(), "t", 5).decide(
        Decision("clip", "c1", "ana", "keep", None), NOW)
    await items.advance_floors(NOW)
    assert items._floors["clips"] == iso_from_epoch(NOW - 200 - 3600)


async def test_a_decision_waits_out_its_undo_delay_and_is_sent_once(store):
    produced = Produced()
    decisions = PendingDecisions(store, produced, "review.decisions", undo_s=5)
    await decisions.decide(Decision("clip", "c0", "ana", "discard", "nudity"), NOW)
    assert await decisions.undo("clip", "c0", "ana")
    assert not await decisions.undo("clip", "c0", "ana")
    await decisions.decide(Decision("clip", "c0", "ana", "keep", None), NOW + 1)
    assert await decisions.send_due(NOW + 3) == 0
    assert await decisions.send_due(NOW + 7) == 1
    assert await decisions.send_due(NOW + 8) == 0
    assert not await decisions.undo("clip", "c0", "ana")  # sent: too late
    [(topic, event, key)] = produced.sent
    assert (topic, key) == ("review.decisions", b"clip:c0")
    assert event == {"item_id": "c0", "kind": "clip", "decision": "keep",
                     "moderator_id": "ana", "decided_at": iso_from_epoch(NOW + 1)}


def test_a_decision_names_a_known_kind_decision_and_category():
    for bad in (("clip", "c", "m", "ban", None), ("stream", "c", "m", "keep", None),
                ("clip", "c", "m", "discard", "<b>"), ("clip", "c\n1", "m", "keep", None),
                ("clip", "", "m", "keep", None)):
        with pytest.raises(ValueError):
            Decision(*bad)


def test_tokens_a_proxys_header_and_csrf_tokens():
    auth = Authenticator(TOKENS, "", "k" * 32)
    assert auth.moderator_of_token(TOKENS["bo"]) == "bo"
    assert auth.moderator_of_token("token-of-bo-012345678") is None
    assert auth.csrf_valid("ana", auth.csrf_token("ana"))
    assert not auth.csrf_valid("bo", auth.csrf_token("ana"))


async def test_every_request_needs_a_moderator_and_every_post_a_csrf_token(store):
    metrics = Metrics(CollectorRegistry())
    async with MediaFetcher(MediaConfig()) as fetcher:
        auth = Authenticator(TOKENS, "", CONFIG.session_key)
        services = Services(CONFIG, auth, ReviewItems(store, CONFIG), Claims(store, 60),
                            PendingDecisions(store, Produced(), "t", 5),
                            HistoryRepository(store), fetcher, metrics)
        async with TestClient(TestServer(make_app(services))) as client:
            anonymous = await client.get("/")
            assert anonymous.status == 401
            assert anonymous.headers["Content-Security-Policy"] == \
                SECURITY_HEADERS["Content-Security-Policy"]
            signed_in = {"Authorization": f"Bearer {TOKENS['ana']}"}
            page = await client.get("/queue/clips", headers=signed_in)
            assert page.status == 200 and "c0" in await page.text()
            body = {"kind": "clip", "item_id": "c0", "decision": "keep"}
            refused = await client.post("/decide", json=body,
                                        headers={**signed_in, "X-CSRF-Token": "nope"})
            assert refused.status == 403
            accepted = await client.post("/decide", json=body, headers={
                **signed_in, "X-CSRF-Token": auth.csrf_token("ana")})
            assert accepted.status == 200 and "undo_until" in await accepted.json()
            held = await client.post("/decide", json={**body, "item_id": "c1"}, headers={
                "Authorization": f"Bearer {TOKENS['bo']}", "X-CSRF-Token": auth.csrf_token("bo")})
            assert held.status == 200
            taken = await client.get("/item/clips/clip/c2", headers=signed_in)
            assert taken.status == 200
            other = await client.get("/item/clips/clip/c2",
                                     headers={"Authorization": f"Bearer {TOKENS['bo']}"})
            assert other.status == 409


async def test_behind_a_proxy_its_header_names_the_moderator(store):
    config = ReviewConfig(trusted_header="X-Auth-Request-Email", session_key="k" * 32)
    auth = Authenticator({}, config.trusted_header, config.session_key)
    async with MediaFetcher(MediaConfig()) as fetcher:
        services = Services(config, auth, ReviewItems(store, config), Claims(store, 60),
                            PendingDecisions(store, Produced(), "t", 5),
                            HistoryRepository(store), fetcher, Metrics(CollectorRegistry()))
        async with TestClient(TestServer(make_app(services))) as client:
            assert (await client.get("/")).status == 401
            signed = {"X-Auth-Request-Email": "ana@example.com"}
            page = await client.get("/", headers=signed)
            assert page.status == 200 and "ana@example.com" in await page.text()
            # A token means nothing here, and a header that is no valid id is refused.
            assert (await client.get("/", headers={
                "Authorization": f"Bearer {TOKENS['ana']}"})).status == 401
            assert (await client.get("/", headers={
                "X-Auth-Request-Email": "a\tb"})).status == 401


def test_a_posts_video_is_shown_in_a_player():
    from orchestrator.review import Item

    def item(url: str | None) -> Item:
        return Item("post", "p", "u", None, url, 0.5, None, None, {}, None, None, None, None)

    assert item("https://cdn.example.com/v/1.MP4?sig=x").is_video
    assert not item("https://cdn.example.com/i/1.jpg").is_video and not item(None).is_video


def test_media_is_served_as_what_its_bytes_are():
    assert media_type(b"RIFF....WAVE") == "audio/wav"
    assert media_type(b"\x00\x00\x00\x18ftypmp42") == "video/mp4"
    assert media_type(b"<html><script>") == "application/octet-stream"
