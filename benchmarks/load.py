"""Latency under load: clips produced at a steady rate (open loop) at fractions of the
measured capacity, with p50/p99 end to end from ``created_at`` to ``scored_at``."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from datetime import datetime

import httpx
from confluent_kafka import Producer
from tqdm import tqdm

from benchmarks import trace
from benchmarks.stack import Served
from benchmarks.trace import percentile
from orchestrator.clock import iso_utc
from scripts import harness

FRACTIONS = (0.25, 0.5, 0.9)


def latencies(events: list[dict]) -> dict[str, float]:
    """p50/p99 seconds from each event's ``created_at`` to its ``scored_at``."""
    seconds = [(datetime.fromisoformat(e["scored_at"])
                - datetime.fromisoformat(e["created_at"])).total_seconds() for e in events]
    return {"p50_s": statistics.median(seconds), "p99_s": percentile(seconds, 0.99)}


def produce_at_rate(bootstrap: str, topic: str, bodies: list[dict], rate: float,
                    label: str) -> None:
    """Send ``bodies`` evenly spaced at ``rate`` per second, each stamped when it leaves."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    started = time.monotonic()
    for index, body in enumerate(tqdm(bodies, desc=label, unit="clip", leave=False)):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        producer.produce(topic, key=body["clip_id"].encode(),
                         value=json.dumps({**body, "created_at": iso_utc()}).encode())
        producer.poll(0)
    producer.flush(30)


def verdict_events(bootstrap: str, topic: str, clip_ids: set[str]) -> list[dict]:
    events = (json.loads(m.value()) for m in
              harness.read_topic(bootstrap, topic, expect=len(clip_ids), timeout_s=120))
    return [e for e in events if e["clip_id"] in clip_ids]


async def _one_batch_seconds(path: Served, model: str, bodies: list[bytes], rounds: int) -> float:
    url = f"{path.server.inference_url}/predictions/{model}"
    async with httpx.AsyncClient(headers=path.server.auth(), timeout=600) as client:
        async def batch() -> float:
            started = time.perf_counter()
            responses = await asyncio.gather(*(client.post(url, content=b) for b in bodies))
            if any(r.status_code != 200 for r in responses):
                raise RuntimeError(f"TorchServe refused the batch: {responses[0].text[:200]}")
            return time.perf_counter() - started

        await batch()  # warm-up
        return statistics.median([await batch() for _ in range(rounds)])


def one_batch_seconds(path: Served, model: str, bodies: list[bytes], rounds: int = 3) -> float:
    """Median time for 8 concurrent clips straight to TorchServe on an idle server."""
    return asyncio.run(_one_batch_seconds(path, model, bodies, rounds))


def capacity(path: Served, bodies: list[dict], label: str) -> float:
    """Clips per second the path sustains on a burst of ``bodies`` produced at once."""
    before = path.handled()
    harness.produce(path.bootstrap, path.topics.input,
                    [(b["clip_id"].encode(), json.dumps({**b, "created_at": iso_utc()}).encode())
                     for b in bodies])
    started = time.monotonic()
    path.wait_handled(before + len(bodies), label)
    return len(bodies) / (time.monotonic() - started)


def run(path: Served, bodies: list[dict], *, capacity_clips_per_s: float, seconds: float,
        fractions: Sequence[float] = FRACTIONS) -> list[dict]:
    """One steady run per fraction of capacity; each uses fresh clip ids from ``bodies``."""
    rows = []
    for fraction in fractions:
        rate = fraction * capacity_clips_per_s
        count = max(8, round(rate * seconds))
        run_bodies = [{**bodies[i % len(bodies)], "clip_id": f"load{fraction}-{i}"}
                      for i in range(count)]
        before, counters = path.handled(), trace.Counters.read(path)
        produce_at_rate(path.bootstrap, path.topics.input, run_bodies, rate,
                        f"{fraction:.0%} of capacity")
        path.wait_handled(before + count, f"{fraction:.0%}: draining")
        events = verdict_events(path.bootstrap, path.topics.output,
                                {b["clip_id"] for b in run_bodies})
        rows.append({"fraction": fraction, "clips_per_s": rate, "clips": count,
                     "scored": len(events), **latencies(events),
                     "trace": trace.breakdown(events, counters, trace.Counters.read(path))})
    return rows
