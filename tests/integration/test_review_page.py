"""The review page in a real browser (Debian's chromium, driven by Playwright) against real
services: a broker, the database, the quality daemon. A moderator signs in, works through ten
items from the keyboard and the decisions reach review.decisions and move vigil_quality_*; a
second moderator never sees a claimed item; no token gets 401; a caption holding markup is
shown as text and runs nothing; a wrong CSRF token is refused."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orchestrator.clock import iso_from_epoch
from orchestrator.db import open_store, upsert
from scripts import clips, harness
from scripts.services.process import REPO_ROOT, free_port

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKENS = {"ana": "token-of-ana-0123456789", "bo": "token-of-bo-0123456789"}
HOSTILE = '<script>alert("caption")</script><img src=x onerror="alert(1)"> hello'
CLIPS = 12
# Where the screenshots go: docs/images when asked (VIGIL_REVIEW_SCREENSHOTS=docs/images),
# else the test's own folder.
SHOTS = os.environ.get("VIGIL_REVIEW_SCREENSHOTS")


def seed(database_url: str, media: Path) -> None:
    now = time.time() - 600
    clip_rows, samples = [], []
    for index in range(CLIPS):
        path = media / f"clip-{index}.wav"
        path.write_bytes(clips.clip("wav", seconds=1, rate=16_000, seed=index))
        score = 0.9 if index % 3 else 0.2  # every third an audit item, scored under 0.5
        at = iso_from_epoch(now + index)
        clip_rows.append({"clip_id": f"clip-{index}", "stream_id": f"s{index}", "language": "hi",
                          "model": "audio_nsfw_hi", "model_version": "1.0", "score": score,
                          "label": "nsfw" if score >= 0.5 else "safe", "threshold": 0.5,
                          "scored_at": at})
        samples.append({"item_id": f"clip-{index}", "kind": "clip", "model": "audio_nsfw_hi",
                        "version": "1.0", "language": "hi", "score": score, "threshold": 0.5,
                        "flagged": int(score >= 0.5),
                        "inclusion_probability": 1.0 if score >= 0.5 else 0.5,
                        "sampled_at": at, "media_url": path.as_uri()})
    post = {"post_id": "post-hostile", "user_id": "user-7", "created_at": iso_from_epoch(now),
            "caption": HOSTILE, "media_url": None}
    score = {"post_id": "post-hostile", "user_id": "user-7", "score": 0.8,
             "top_category": "spam", "categories": json.dumps({"spam": 0.8, "safe": 0.2}),
             "model_version": "1.0", "created_at": post["created_at"],
             "scored_at": post["created_at"]}

    async def write() -> None:
        async with open_store(database_url) as store:
            await upsert(store, "audio_verdicts", clip_rows)
            await upsert(store, "review_samples", samples)
            await upsert(store, "posts", [post])
            await upsert(store, "post_scores", [score])
    asyncio.run(write())


@pytest.fixture
def stack(tmp_path: Path, tansu, database_url: str) -> Iterator[dict]:
    if CHROMIUM is None:
        pytest.fail("no chromium: scripts/setup.sh installs Debian's package")
    media = tmp_path / "media"
    media.mkdir()
    seed(database_url, media)
    topic = f"r{time.time_ns() % 10**8}.decisions"
    harness.Topics(input=topic, output=f"{topic}.unused").create(tansu.bootstrap)
    catalogue = tmp_path / "catalogue.json"
    catalogue.write_text(json.dumps({"format": 1, "live": {"audio_nsfw_hi": "1.0"}, "models": [
        {"name": "audio_nsfw_hi", "version": "1.0", "family": "audio_nsfw", "file": "a.mar",
         "languages": ["hi"], "labels": ["safe", "nsfw"]}]}))
    port = free_port()
    review = harness.Daemon(workdir=tmp_path, pipeline="review", env={
        "DATABASE_URL": database_url, "VIGIL_KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap,
        "VIGIL_KAFKA_OUTPUT_TOPIC": topic, "VIGIL_REVIEW_PORT": str(port),
        "VIGIL_REVIEW_TOKENS": json.dumps(TOKENS), "VIGIL_REVIEW_UNDO_S": "1",
        "VIGIL_REVIEW_SESSION_KEY": "a-session-key-for-tests-only",
        "VIGIL_MEDIA_ALLOWED_SCHEMES": "file", "VIGIL_MEDIA_ALLOWED_DIRS": str(media)})
    quality_dir = tmp_path / "quality"
    quality_dir.mkdir()
    quality = harness.Daemon(workdir=quality_dir, pipeline="quality", env={
        "DATABASE_URL": database_url, "VIGIL_KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap,
        "VIGIL_KAFKA_INPUT_TOPIC": topic, "VIGIL_KAFKA_GROUP_ID": f"{topic}-quality",
        "VIGIL_TORCHSERVE_CATALOGUE": str(catalogue), "VIGIL_QUALITY_MIN_DECISIONS": "5",
        "VIGIL_QUALITY_AUDIT_EVERY_S": "1"})
    try:
        for daemon in (review, quality):
            daemon.start()
            daemon.wait_ready()
        harness.wait_until(lambda: _answers(port), "the review page answers", review,
                           timeout_s=30)
        yield {"url": f"http://127.0.0.1:{port}", "topic": topic, "review": review,
               "quality": quality, "shots": REPO_ROOT / SHOTS if SHOTS else tmp_path}
    finally:
        review.kill()
        quality.kill()


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/signin", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_moderator_works_through_ten_items_from_the_keyboard(stack, tansu):
    from playwright.sync_api import expect, sync_playwright

    url = stack["url"]
    assert httpx.get(f"{url}/").status_code == 401  # no token
    assert httpx.get(f"{url}/queue/clips", cookies={"vigil_review": "wrong"}).status_code == 401
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox"])
        try:
            # Two moderators, each with a cookie jar of their own.
            ana, bo = browser.new_context().new_page(), browser.new_context().new_page()
            dialogs = []
            for page in (ana, bo):
                page.on("dialog", lambda dialog: (dialogs.append(dialog.message),
                                                  dialog.dismiss()))
                page.goto(f"{url}/signin")
            sign_in(ana, TOKENS["ana"])
            sign_in(bo, TOKENS["bo"])

            ana.goto(f"{url}/queue/clips")
            assert ana.locator("table.queue tbody tr").count() == CLIPS
            ana.screenshot(path=str(stack["shots"] / "review-queue.png"), full_page=True)

            ana.goto(f"{url}/next/clips")
            ana.wait_for_selector("#item")
            ana.screenshot(path=str(stack["shots"] / "review-item.png"), full_page=True)
            held = ana.locator("#item").get_attribute("data-item-id")
            # Bo never sees what Ana holds: not listed, and refused when opened directly.
            bo.goto(f"{url}/queue/clips")
            listed = bo.locator("table.queue tbody td a").all_inner_texts()
            assert held not in listed and len(listed) == CLIPS - 1
            assert bo.goto(f"{url}/item/clips/clip/{held}").status == 409

            decided = []
            for step in range(10):
                current = ana.locator("#item").get_attribute("data-item-id")
                decided.append(current)
                ana.keyboard.press("k" if step % 2 else "1")  # keep, or discard: nudity
                item = ana.locator("#item")
                if step == 4:  # an undo, then the same item again
                    expect(item).not_to_have_attribute("data-item-id", current)
                    ana.keyboard.press("u")
                    expect(item).to_have_attribute("data-item-id", current)
                    ana.keyboard.press("1")
                expect(item).not_to_have_attribute("data-item-id", current)
            assert len(set(decided)) == 10

            # A caption with markup is text: nothing runs, nothing becomes an element.
            ana.goto(f"{url}/item/posts/post/post-hostile")
            caption = ana.locator(".caption")
            assert caption.inner_text() == HOSTILE
            assert caption.locator("script, img").count() == 0
            assert dialogs == []
            ana.screenshot(path=str(stack["shots"] / "review-hostile-caption.png"))

            cookie = {"vigil_review": TOKENS["ana"]}
            wrong = httpx.post(f"{url}/decide", cookies=cookie, json={
                "kind": "post", "item_id": "post-hostile", "decision": "keep"},
                headers={"X-CSRF-Token": "not-the-token"})
            assert wrong.status_code == 403
        finally:
            browser.close()

    events = [json.loads(m.value()) for m in
              harness.read_topic(tansu.bootstrap, stack["topic"], expect=10)]
    assert sorted(e["item_id"] for e in events) == sorted(decided)
    assert {e["moderator_id"] for e in events} == {"ana"}
    assert all(e["decision"] in ("keep", "discard") and e["decided_at"] for e in events)
    quality = stack["quality"]
    harness.wait_until(lambda: "vigil_quality_recall_estimate{" in quality.metrics(),
                       "the quality daemon measures the decisions", quality)
    assert 'vigil_quality_precision{language="hi",model="audio_nsfw_hi",version="1.0"}' in \
        quality.metrics()


def sign_in(page, token: str) -> None:
    page.fill("#token", token)
    page.click("form.signin button")
    page.wait_for_selector("ul.queues")
