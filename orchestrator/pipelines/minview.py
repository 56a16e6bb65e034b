"""Min-view triage: posts.views -> per net crossed, review or skip -> review_queue, review.queue.

Once per post per net, whatever is redelivered: the decision is recorded in
``triage_decisions`` (first write wins) before anything is published, and an enqueue
decision is published (``review_queue`` row, ``review.queue`` event) until it is marked
published. A crash between those steps re-publishes on redelivery; it never decides twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from orchestrator import history_api
from orchestrator.errors import InvalidField, MissingField, UnknownPost
from orchestrator.history import HistoryRepository
from orchestrator.locks import KeyedLocks
from orchestrator.pipelines.base import Pipeline, Runtime, parse_json_object, parse_time
from orchestrator.sinks import encode_event
from orchestrator.source import Envelope
from orchestrator.stores import TABLES, iso_utc, upsert

ENQUEUE, SKIP = "enqueue", "skip"


@dataclass(frozen=True)
class ViewsEvent:
    envelope: Envelope
    post_id: str
    views: int
    at: float  # epoch seconds


def parse(envelope: Envelope) -> ViewsEvent:
    """Validate one ``posts.views`` event; raises a :class:`BadMessage` naming what is wrong."""
    message = parse_json_object(envelope)
    post_id, views = message.get("post_id"), message.get("views")
    if not post_id:
        raise MissingField("missing field 'post_id'")
    if not isinstance(post_id, str):
        raise InvalidField("field 'post_id' must be a string")
    if views is None:
        raise MissingField("missing field 'views'")
    if isinstance(views, bool) or not isinstance(views, int):
        raise InvalidField(f"views must be an integer, not {views!r:.50}")
    if views < 0:
        raise InvalidField(f"views must not be negative: {views}")
    return ViewsEvent(envelope, post_id, views, parse_time(message.get("at"), "at", envelope))


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


class MinviewPipeline(Pipeline[ViewsEvent]):
    """Applies the calibrated :class:`~modelzoo.triage.policy.TriagePolicy` at each views net."""

    name = "minview"

    def __init__(self, runtime: Runtime, policy: Any, history: HistoryRepository) -> None:
        super().__init__(runtime)
        self.settings = runtime.config.triage
        self.policy = policy
        self.history = history
        self._publishing = KeyedLocks()
        for net in self.settings.nets:
            self.metrics.review_enqueued.labels(str(net))
            self.metrics.review_skipped.labels(str(net))
        for net in self.settings.nets:
            policy.threshold(self.settings.method, net)  # fail at start, not per message

    @classmethod
    async def open(cls, runtime: Runtime, stack: contextlib.AsyncExitStack) -> MinviewPipeline:
        from modelzoo.triage.policy import TriagePolicy

        settings = runtime.config.triage
        policy = TriagePolicy.load(settings.policy_path)
        history = HistoryRepository(runtime.store, window_days=settings.history_days,
                                    ttl_s=settings.cache_ttl_s, max_users=settings.cache_size)
        if settings.history_port:
            runner = await history_api.start(history, settings.history_addr,
                                             settings.history_port)
            stack.push_async_callback(runner.cleanup)
        return cls(runtime, policy, history)

    def parse(self, envelope: Envelope) -> ViewsEvent:
        return parse(envelope)

    async def process_batch(self, items: list[ViewsEvent]) -> None:
        post_ids = sorted({item.post_id for item in items})
        posts, scores = await self._lookup(post_ids)
        risks = await self._risks([p for p in post_ids if p in posts and p in scores],
                                  posts, scores)
        known = []
        for item in items:
            if item.post_id in posts:
                known.append(item)
            else:
                await self.spawn(self.dead_letter(
                    item.envelope, UnknownPost(f"no post {item.post_id!r} in posts")),
                    "dead_letter")
        if known:
            await self.spawn(self._record(known, posts, scores, risks), "review")

    async def _lookup(self, post_ids: list[str]):
        marks = _placeholders(len(post_ids))
        store = self.runtime.store
        post_rows = await store.fetch_all(
            f"SELECT post_id, user_id FROM posts WHERE post_id IN ({marks})", post_ids)
        score_rows = await store.fetch_all(
            f"SELECT post_id, score FROM post_scores WHERE post_id IN ({marks}) "
            "AND score IS NOT NULL", post_ids)
        return dict(post_rows), dict(score_rows)

    async def _decided(self, post_ids: list[str]) -> dict[tuple[str, int], dict[str, Any]]:
        columns = TABLES["triage_decisions"].columns
        rows = await self.runtime.store.fetch_all(
            f"SELECT {', '.join(columns)} FROM triage_decisions "
            f"WHERE post_id IN ({_placeholders(len(post_ids))})", post_ids)
        return {(row[0], int(row[1])): dict(zip(columns, row)) for row in rows}

    async def _risks(self, post_ids: list[str], posts: dict[str, str],
                     scores: dict[str, float]) -> dict[str, float]:
        if not post_ids:
            return {}
        histories = await asyncio.gather(*(self.history.get(posts[p]) for p in post_ids))
        features = [(scores[p], h.posts, h.discards) for p, h in zip(post_ids, histories)]
        risk = self.policy.risk(self.settings.method, np.array(features))
        return dict(zip(post_ids, (float(r) for r in risk)))

    def _decide(self, post_id: str, net: int, decisions: dict, scores: dict[str, float],
                risks: dict[str, float]) -> dict[str, Any]:
        earlier = [n for n in self.settings.nets if n < net
                   and decisions.get((post_id, n), {}).get("decision") == ENQUEUE]
        score = scores.get(post_id)
        if earlier:
            enqueue, risk, reason = False, risks.get(post_id), f"reviewed at net {earlier[0]}"
        elif score is None:
            enqueue, risk, reason = True, None, "no first-line score yet: reviewed by default"
        else:
            decision = self.policy.decide(self.settings.method, net, risks[post_id])
            enqueue, risk, reason = decision.enqueue, decision.risk, decision.reason
        return {"post_id": post_id, "net": net, "decision": ENQUEUE if enqueue else SKIP,
                "score": score, "risk": risk, "reason": reason, "decided_at": iso_utc(),
                "published": 0}

    async def _record(self, items: list[ViewsEvent], posts: dict[str, str],
                      scores: dict[str, float],
                      risks: dict[str, float]) -> None:
        """Decide each net crossed for the first time, publish unpublished enqueues, finish.

        Batches run concurrently and one post's events can sit in several of them; holding
        the posts' locks makes "read, decide, record, publish, mark" happen once per decision.
        """
        post_ids = sorted({i.post_id for i in items})
        try:
            async with self._publishing.hold(post_ids):
                decisions = await self.with_retries(self._decided, post_ids)
                new = []
                for item in items:
                    for net in (n for n in self.settings.nets if item.views >= n):
                        if (item.post_id, net) not in decisions:
                            decision = self._decide(item.post_id, net, decisions, scores, risks)
                            decisions[(item.post_id, net)] = decision
                            new.append(decision)
                if new:
                    await self.with_retries(upsert, self.runtime.store, "triage_decisions", new,
                                            keep_existing=True)
                for decision in decisions.values():
                    if decision["decision"] == ENQUEUE and not decision["published"]:
                        await self._publish(decision, posts[decision["post_id"]])
        except Exception as error:  # noqa: BLE001 - any failure dead-letters, never drops
            self.metrics.side_effect_errors.labels("review").inc()
            for item in items:
                await self.dead_letter(item.envelope, error)
            return
        for decision in new:
            counter = (self.metrics.review_enqueued if decision["decision"] == ENQUEUE
                       else self.metrics.review_skipped)
            counter.labels(str(decision["net"])).inc()
        now = time.time()
        for item in items:
            self.metrics.verdicts.labels(self.name, "decided").inc()
            self.metrics.end_to_end.labels(self.name).observe(max(0.0, now - item.at))
            self.finish(item.envelope)

    async def _publish(self, decision: dict[str, Any], user_id: str) -> None:
        store = self.runtime.store
        row = {**decision, "enqueued_at": decision["decided_at"]}
        await self.with_retries(upsert, store, "review_queue", [row], keep_existing=True)
        event = {"post_id": decision["post_id"], "user_id": user_id, "net": decision["net"],
                 "score": decision["score"], "risk": _finite(decision["risk"]),
                 "reason": decision["reason"], "enqueued_at": decision["decided_at"]}
        await self.with_retries(self.runtime.producer.produce, self.config.kafka.output_topic,
                                encode_event(event), decision["post_id"].encode())
        await self.with_retries(
            store.execute_many,
            "UPDATE triage_decisions SET published = 1 WHERE post_id = ? AND net = ?",
            [(decision["post_id"], decision["net"])])


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value
