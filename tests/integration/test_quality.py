"""`vigil run quality` against a real broker and real databases: precision, recall and the
threshold proposal match an independent oracle on a generated decision stream."""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest
from sklearn.metrics import precision_score, recall_score

from orchestrator.db import open_store, upsert
from scripts import harness

pytestmark = pytest.mark.integration
HI, MULTI = 300, 40  # decided clips per model
CATALOGUE = {"format": 1, "live": {"audio_nsfw_hi": "1.0", "audio_nsfw_multi": "1.0"},
             "models": [{"name": "audio_nsfw_hi", "version": "1.0", "family": "audio_nsfw",
                         "file": "a.mar", "languages": ["hi"], "labels": ["safe", "nsfw"]},
                        {"name": "audio_nsfw_multi", "version": "1.0", "family": "audio_nsfw",
                         "file": "b.mar", "languages": ["*"], "labels": ["safe", "nsfw"]}]}


def verdicts(rng: random.Random) -> list[dict]:
    """Verdict rows whose scores lean towards the moderators' labels (kept in ``truth``)."""
    rows = []
    for index in range(HI + MULTI):
        hi = index < HI
        positive = rng.random() < 0.3
        score = round(min(1.0, max(0.0, rng.gauss(0.7 if positive else 0.35, 0.2))), 4)
        rows.append({"clip_id": f"clip-{index}", "stream_id": "s", "language": "hi" if hi
                     else f"zz{index}", "model": "audio_nsfw_hi" if hi else "audio_nsfw_multi",
                     "model_version": "1.0", "score": score, "label": "safe",
                     "threshold": 0.6 if hi else 0.5, "scored_at": "2026-11-29T10:00:00Z",
                     "truth": positive})
    return rows


def seed(database_url: str, rows: list[dict]) -> None:
    async def write() -> None:
        async with open_store(database_url) as store:
            await upsert(store, "audio_verdicts", rows)
    asyncio.run(write())


def oracle(rows: list[dict]) -> tuple[float, float]:
    truth = [r["truth"] for r in rows]
    flagged = [r["score"] >= r["threshold"] for r in rows]
    return precision_score(truth, flagged), recall_score(truth, flagged)


def oracle_threshold(rows: list[dict], target: float) -> float:
    positives = sum(r["truth"] for r in rows)
    return max(t for t in {r["score"] for r in rows}
               if sum(r["truth"] and r["score"] >= t for r in rows) / positives >= target)


def quality(metrics: str, name: str, model: str, language: str) -> float | None:
    return harness.sample_value(metrics, f"vigil_quality_{name}", model=model, version="1.0",
                                language=language)


def test_quality_and_proposals_match_an_oracle_and_survive_a_restart(tmp_path, tansu,
                                                                    database_url):
    rows = verdicts(random.Random(7))
    seed(database_url, rows)
    decisions = [{"item_id": r["clip_id"], "kind": "clip", "moderator_id": f"m{i % 3}",
                  "decision": "discard" if r["truth"] else "keep",
                  "decided_at": f"2026-11-29T11:{i // 60:02d}:{i % 60:02d}Z"}
                 for i, r in enumerate(rows)]
    later = {"moderator_id": "m1", "decided_at": "2026-11-29T12:00:00Z"}
    decisions += [{"item_id": f"post-{i}", "kind": "post", "decision": "keep", **later}
                  for i in range(5)]
    decisions += [{"item_id": f"never-scored-{i}", "kind": "clip", "decision": "discard",
                   **later} for i in range(5)]
    bad = [b"{not json", json.dumps({"item_id": "x", "kind": "clip", "decision": "ban"}).encode()]
    prefix = f"q{time.time_ns() % 10**8}"
    topics = harness.Topics(input=f"{prefix}.decisions", output=f"{prefix}.unused")
    topics.create(tansu.bootstrap)
    harness.produce(tansu.bootstrap, topics.input,
                    [(d["item_id"].encode(), json.dumps(d).encode()) for d in decisions]
                    + [(None, value) for value in bad])
    catalogue = tmp_path / "catalogue.json"
    catalogue.write_text(json.dumps(CATALOGUE))
    daemon = harness.Daemon(workdir=tmp_path, pipeline="quality", env={
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap,
        "VIGIL_KAFKA_GROUP_ID": f"{topics.input}-group", "VIGIL_KAFKA_INPUT_TOPIC": topics.input,
        "VIGIL_TORCHSERVE_CATALOGUE": str(catalogue), "DATABASE_URL": database_url,
        # One proposal for hi, at its 300th decided clip; gauges from 40 decided clips on.
        "VIGIL_QUALITY_MIN_DECISIONS": str(MULTI), "VIGIL_QUALITY_PROPOSE_EVERY": str(HI)})
    total = len(decisions) + len(bad)
    daemon.start()
    try:
        daemon.wait_ready()
        deadline = time.monotonic() + 120
        while harness.handled(metrics := daemon.metrics()) < total:
            assert time.monotonic() < deadline, f"{harness.handled(metrics)} of {total}"
            time.sleep(0.5)
        hi_rows, multi_rows = rows[:HI], rows[HI:]
        found = {"hi": (quality(metrics, "precision", "audio_nsfw_hi", "hi"),
                        quality(metrics, "recall", "audio_nsfw_hi", "hi")),
                 # Made-up languages on the fallback are one series, "*", not 40.
                 "*": (quality(metrics, "precision", "audio_nsfw_multi", "*"),
                       quality(metrics, "recall", "audio_nsfw_multi", "*"))}
        assert found["hi"] == pytest.approx(oracle(hi_rows))
        assert found["*"] == pytest.approx(oracle(multi_rows))
        assert "zz3" not in metrics
        assert daemon.terminate() == 0

        proposals = harness.query(database_url, "SELECT model, version, language, threshold, "
                                  "target, precision, recall, decisions FROM threshold_proposals")
        assert len(proposals) == 1
        model, version, language, threshold, target, precision, recall, count = proposals[0]
        assert (model, version, language, target, count) == \
            ("audio_nsfw_hi", "1.0", "hi", "recall:0.95", HI)
        expected = oracle_threshold(hi_rows, 0.95)
        assert threshold == pytest.approx(expected)
        at_proposal = [{**r, "threshold": expected} for r in hi_rows]
        assert (precision, recall) == pytest.approx(oracle(at_proposal))
        recorded = harness.query(database_url, "SELECT COUNT(*) FROM review_decisions")[0][0]
        assert recorded == len(decisions)  # posts and unscored clips are recorded too
        assert len(harness.read_topic(tansu.bootstrap, topics.dlq, expect=len(bad))) == len(bad)

        daemon.start()  # a restart refills the windows from the database
        daemon.wait_ready()
        # The metrics endpoint answers from the first moment; the windows are refilled
        # once the daemon has reached its database.
        deadline = time.monotonic() + 60
        while quality(restarted := daemon.metrics(), "recall", "audio_nsfw_hi", "hi") is None:
            assert time.monotonic() < deadline, "the windows were not refilled"
            time.sleep(0.2)
        assert (quality(restarted, "precision", "audio_nsfw_hi", "hi"),
                quality(restarted, "recall", "audio_nsfw_hi", "hi")) == pytest.approx(found["hi"])
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
