"""The review part of the demo: ``vigil review`` and ``vigil run quality`` over the demo's
database and broker. A scripted moderator decides a few items through the page's own HTTP
API (as the page's script does), the quality daemon measures them, and the page's address
and a moderator token are printed; at a terminal, the page stays up until Enter."""

from __future__ import annotations

import json
import re
import secrets
import sys
from pathlib import Path

import httpx

from scripts import harness
from scripts.services.process import free_port

TOPIC = "review.decisions"
DECISIONS = 18


def start(workdir: Path, bootstrap: str, catalogue: Path, media: Path
          ) -> tuple[harness.Daemon, harness.Daemon, str, str]:
    """Start the review page and the quality daemon; returns them, the page's URL and a
    moderator token."""
    harness.Topics(input=TOPIC, output=f"{TOPIC}.unused").create(bootstrap)
    database_url = f"sqlite:///{workdir / 'vigil.db'}"
    token, port = secrets.token_urlsafe(24), free_port()
    folder = workdir / "review"
    folder.mkdir(exist_ok=True)
    review = harness.Daemon(workdir=folder, pipeline="review", env={
        "DATABASE_URL": database_url, "VIGIL_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "VIGIL_REVIEW_PORT": str(port), "VIGIL_REVIEW_TOKENS": json.dumps({"demo": token}),
        "VIGIL_REVIEW_SESSION_KEY": secrets.token_urlsafe(32), "VIGIL_REVIEW_UNDO_S": "2",
        "VIGIL_MEDIA_ALLOWED_SCHEMES": "file", "VIGIL_MEDIA_ALLOWED_DIRS": str(media)})
    quality = harness.Daemon(workdir=workdir / "review", pipeline="quality", env={
        "DATABASE_URL": database_url, "VIGIL_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "VIGIL_TORCHSERVE_CATALOGUE": str(catalogue), "VIGIL_QUALITY_MIN_DECISIONS": "3",
        "VIGIL_QUALITY_AUDIT_EVERY_S": "2"})
    for daemon in (review, quality):
        daemon.start()
        daemon.wait_ready()
    return review, quality, f"http://127.0.0.1:{port}", token


def decide_some(url: str, token: str) -> int:
    """Decide up to :data:`DECISIONS` livestream clips as a moderator would: open the next
    item, keep or discard it. Returns how many were decided."""
    headers = {"Authorization": f"Bearer {token}"}
    decided = 0
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for index in range(DECISIONS):
            page = client.get("/next/clips?fragment=1")
            if page.status_code != 200:
                break
            item = re.search(r'data-kind="(\w+)" data-item-id="([^"]+)"', page.text)
            csrf = re.search(r'name="csrf-token" content="(\w+)"',
                             client.get("/").text)
            score = float(re.search(r'class="score">([\d.]+)<', page.text).group(1))
            decision = "discard" if score >= 0.5 and index % 3 else "keep"
            client.post("/decide", headers={"X-CSRF-Token": csrf.group(1)}, json={
                "kind": item.group(1), "item_id": item.group(2), "decision": decision,
                "category": "other" if decision == "discard" else None}).raise_for_status()
            decided += 1
    return decided


def run(workdir: Path, bootstrap: str, catalogue: Path, media: Path) -> bool:
    harness.step("starting `vigil review` (the moderators' page) and `vigil run quality`")
    review, quality, url, token = start(workdir, bootstrap, catalogue, media)
    try:
        decided = decide_some(url, token)
        harness.step(f"a scripted moderator decided {decided} livestream clips on the page")
        harness.wait_until(lambda: harness.handled(quality.metrics()) >= decided,
                           "the quality daemon reads the decisions", quality, timeout_s=60)
        for line in quality.metrics().splitlines():
            if line.startswith(("vigil_quality_precision{", "vigil_quality_recall{",
                                "vigil_quality_audited{", "vigil_quality_recall_naive{")):
                print("   ", line)
        harness.step(f"the review page: {url}/  (sign in with the token {token})")
        if sys.stdin.isatty():
            input("    open it, decide a few items (k keep, 1-7 discard, u undo), then press "
                  "Enter to stop the demo ")
        return decided > 0
    finally:
        for daemon in (review, quality):
            daemon.terminate()
