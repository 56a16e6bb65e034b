"""The review page: time to interactive of an item page, and queues 100,000 items deep.

    python -m benchmarks.review [--items 100000] [--out results/bench_review.json]

Seeds SQLite with ``--items`` queued items per queue (clips with their audio, posts half of
them over the first-line threshold, min-view items), the oldest ``--decided`` of them
decided, starts ``vigil review`` and times, with
httpx, each queue page and taking the next item (median of 20), and, in Debian's chromium
(Playwright), an item page from navigation to its load event (its script is deferred, so the
keyboard works from then on) and a keyboard decision to the next item on screen (median of 10).
Each queue's query plan is printed: an index, not a scan of the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.machine import describe
from orchestrator.clock import iso_from_epoch
from orchestrator.db import open_store, upsert
from orchestrator.review.items import QUEUES
from scripts import clips, harness
from scripts.services.process import free_port

TOKEN = "benchmark-token-0123456789"


async def seed(database_url: str, media: Path, items: int, decided: int) -> None:
    rng = random.Random(0)
    audio = media / "clip.wav"
    audio.write_bytes(clips.clip("wav", seconds=20, rate=16_000, seed=1))
    start = time.time() - items
    async with open_store(database_url) as store:
        for first in range(0, items, 5000):
            chunk = range(first, min(items, first + 5000))
            at = [iso_from_epoch(start + i) for i in chunk]
            await upsert(store, "review_samples", [
                {"item_id": f"clip-{i}", "kind": "clip", "model": "audio_nsfw_hi",
                 "version": "1.0", "language": "hi", "score": rng.random(), "threshold": 0.5,
                 "flagged": 1, "inclusion_probability": 1.0, "sampled_at": t,
                 "media_url": audio.as_uri()} for i, t in zip(chunk, at)])
            await upsert(store, "posts", [
                {"post_id": f"post-{i}", "user_id": f"user-{i % 5000}", "created_at": t,
                 "caption": f"caption {i}", "media_url": None} for i, t in zip(chunk, at)])
            await upsert(store, "post_scores", [
                {"post_id": f"post-{i}", "user_id": f"user-{i % 5000}", "score": rng.random(),
                 "top_category": "safe", "categories": json.dumps({"safe": 0.5}),
                 "model_version": "1.0", "created_at": t, "scored_at": t}
                for i, t in zip(chunk, at)])
            await upsert(store, "review_queue", [
                {"post_id": f"post-{i}", "net": 1000, "score": 0.5, "risk": 0.5,
                 "reason": "bench", "enqueued_at": t} for i, t in zip(chunk, at)])
            # The oldest ``decided`` of each queue were decided already: a queue worked
            # oldest first leaves a long decided head that every listing walks past.
            await upsert(store, "review_decisions", [
                {"item_id": f"{kind}-{i}", "kind": kind, "decision": "keep",
                 "moderator_id": "m", "decided_at": t}
                for i, t in zip(chunk, at) if i < decided for kind in ("clip", "post")])


def query_plans(path: Path) -> dict[str, str]:
    """Each queue's SQLite plan for its listing query."""
    from orchestrator.review.items import _ID, _SOURCES

    plans = {}
    with sqlite3.connect(path) as db:
        for name, (kind, source, time_column, score) in _SOURCES.items():
            rows = db.execute(
                f"EXPLAIN QUERY PLAN SELECT {_ID[kind]}, {time_column}, {score} FROM {source} "
                f"ORDER BY {time_column} LIMIT 50", [0.5 if name == "posts" else 1]).fetchall()
            plans[name] = "; ".join(row[-1] for row in rows)
    return plans


def median_ms(call, times: int) -> float:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        spent.append((time.perf_counter() - started) * 1000)
    return statistics.median(spent)


def browser_figures(url: str) -> dict[str, float]:
    from playwright.sync_api import expect, sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    loaded, decided = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                             args=["--no-sandbox"])
        page = browser.new_context(extra_http_headers={"Authorization": f"Bearer {TOKEN}"}
                                   ).new_page()
        page.goto(f"{url}/")
        for _ in range(10):
            started = time.perf_counter()
            page.goto(f"{url}/next/clips", wait_until="load")
            loaded.append((time.perf_counter() - started) * 1000)
            item = page.locator("#item")
            current = item.get_attribute("data-item-id")
            started = time.perf_counter()
            page.keyboard.press("k")
            expect(item).not_to_have_attribute("data-item-id", current)
            decided.append((time.perf_counter() - started) * 1000)
        browser.close()
    return {"item_page_to_interactive_ms": statistics.median(loaded),
            "keyboard_decision_to_next_item_ms": statistics.median(decided)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000, help="queued items per queue")
    parser.add_argument("--decided", type=int, default=90_000,
                        help="of them, the oldest already decided")
    parser.add_argument("--out", default="results/bench_review.json")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-review-"))
    media = workdir / "media"
    media.mkdir()
    database_url = f"sqlite:///{workdir / 'vigil.db'}"
    harness.step(f"seeding {args.items:,} items per queue, the oldest {args.decided:,} decided")
    asyncio.run(seed(database_url, media, args.items, args.decided))
    port = free_port()
    review = harness.Daemon(workdir=workdir, pipeline="review", env={
        "DATABASE_URL": database_url, "VIGIL_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "VIGIL_REVIEW_PORT": str(port), "VIGIL_REVIEW_TOKENS": json.dumps({"bench": TOKEN}),
        "VIGIL_REVIEW_SESSION_KEY": "benchmark-session-key-0123",
        "VIGIL_MEDIA_ALLOWED_SCHEMES": "file", "VIGIL_MEDIA_ALLOWED_DIRS": str(media)})
    url = f"http://127.0.0.1:{port}"
    try:
        review.start()
        review.wait_ready()
        harness.wait_until(lambda: httpx.get(f"{url}/signin").status_code == 200,
                           "the review page answers", review, timeout_s=30)
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                              timeout=60)
        harness.step("timing the queue pages and taking the next item (median of 20)")
        figures = {f"queue_{name}_ms": median_ms(lambda n=name: client.get(f"/queue/{n}"), 20)
                   for name in QUEUES}
        figures["queues_overview_ms"] = median_ms(lambda: client.get("/"), 20)
        figures["next_item_ms"] = median_ms(lambda: client.get("/next/posts?fragment=1"), 20)
        harness.step("timing the item page in chromium (median of 10)")
        figures.update(browser_figures(url))
        plans = query_plans(workdir / "vigil.db")
    finally:
        review.kill()
    result = {"machine": describe("cpu"), "items_per_queue": args.items,
              "decided_per_queue": args.decided, "figures": figures,
              "query_plans": plans}
    machine = result["machine"]
    print(f"\n{machine['cpu']}, {machine['cores']} cores, CPU flags "
          f"{' '.join(machine['cpu_flags']) or 'none of note'}")
    for name, value in figures.items():
        print(f"  {name:<36} {value:8.1f}")
    for name, plan in plans.items():
        print(f"  plan {name:<8} {plan}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
