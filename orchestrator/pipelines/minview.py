"""Min-view triage, a views event's whole path:

    posts.views → parse_views (validate)
        → batch of ≤ 8 → CaseScorer (the post's user and first-line score from the
          database, the user's 6-month history, the policy's risk)
        → TriageBook, once per post and net, one net per event (the lowest the post has
          crossed and not yet had decided): decide (review or skip), record the decision
          in triage_decisions, then publish a review: review_queue and review.queue
        → acknowledge; or the dead-letter topic (unknown_post, ...), with the reason.

Once per post and net, whatever is redelivered: the decision is recorded (first write
wins) before anything is published, and a review is published until it is marked
published. A crash between those steps re-publishes on redelivery; it never decides twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson

from orchestrator.clock import iso_utc
from orchestrator.config import TriageConfig
from orchestrator.errors import UnknownPost
from orchestrator.flow import Failure, Stages
from orchestrator.kafka import EventProducer
from orchestrator.messages import ViewsMessage, parse_views
from orchestrator.metrics import Metrics
from orchestrator.pipelines.resources import Resources
from orchestrator.triage import (
    HistoryRepository,
    KeyedLocks,
    TriagePolicy,
    TriageRecords,
    history_api,
)

NAME = "minview"
ENQUEUE, SKIP = "enqueue", "skip"


@dataclass(frozen=True, slots=True)
class TriageCase:
    """What the triage knows about a viewed post: its user, score and risk (None while the
    post has no first-line score yet)."""

    views: ViewsMessage
    user_id: str
    score: float | None
    risk: float | None


class CaseScorer:
    """Looks up each viewed post and computes its risk under the policy."""

    def __init__(self, records: TriageRecords, history: HistoryRepository,
                 policy: TriagePolicy, method: str) -> None:
        self.records = records
        self.history = history
        self.policy = policy
        self.method = method

    async def score(self, items: Sequence[ViewsMessage]) -> list[TriageCase | Failure]:
        post_ids = sorted({item.post_id for item in items})
        users, scores = await asyncio.gather(self.records.users(post_ids),
                                             self.records.scores(post_ids))
        scored = [p for p in post_ids if p in users and p in scores]
        histories = await asyncio.gather(*(self.history.get(users[p]) for p in scored))
        risks = {p: self.policy.risk(self.method, scores[p], h.posts, h.discards)
                 for p, h in zip(scored, histories)}
        return [TriageCase(item, users[item.post_id], scores.get(item.post_id),
                           risks.get(item.post_id)) if item.post_id in users
                else Failure(UnknownPost(f"no post {item.post_id!r} in posts"))
                for item in items]


class TriageBook:
    """The sink: decides the lowest net a post crossed and has no decision for, records it,
    publishes the reviews. Batches run concurrently and one post's events can sit in several of them;
    holding the posts' locks makes "read, decide, record, publish, mark" happen once."""

    def __init__(self, records: TriageRecords, producer: EventProducer, topic: str,
                 policy: TriagePolicy, settings: TriageConfig, metrics: Metrics) -> None:
        self.records = records
        self.producer = producer
        self.topic = topic
        self.policy = policy
        self.settings = settings
        self.metrics = metrics
        self._locks = KeyedLocks()

    async def write(self, cases: Sequence[TriageCase]) -> None:
        post_ids = sorted({case.views.post_id for case in cases})
        async with self._locks.hold(post_ids):
            decisions = await self.records.decisions(post_ids)
            new = []
            for case in cases:
                # One net per event: a post that jumps past several nets in one event has
                # the lowest decided now and the next on its next event, so each net is
                # decided on an event of its own (and a forged jump decides one net only).
                net = next((n for n in self.settings.nets if case.views.views >= n
                            and (case.views.post_id, n) not in decisions), None)
                if net is not None:
                    decision = self._decide(case, net, decisions)
                    decisions[(case.views.post_id, net)] = decision
                    new.append(decision)
            if new:
                await self.records.record(new)
            users = {case.views.post_id: case.user_id for case in cases}
            for decision in decisions.values():
                if decision["decision"] == ENQUEUE and not decision["published"]:
                    await self._publish(decision, users[decision["post_id"]])
        for decision in new:
            counter = (self.metrics.review_enqueued if decision["decision"] == ENQUEUE
                       else self.metrics.review_skipped)
            counter.labels(str(decision["net"])).inc()

    def _decide(self, case: TriageCase, net: int, decisions: dict) -> dict[str, Any]:
        post_id = case.views.post_id
        earlier = [n for n in self.settings.nets if n < net
                   and decisions.get((post_id, n), {}).get("decision") == ENQUEUE]
        if earlier:
            enqueue, risk, reason = False, case.risk, f"reviewed at net {earlier[0]}"
        elif case.risk is None:
            enqueue, risk, reason = True, None, "no first-line score yet: reviewed by default"
        else:
            decision = self.policy.decide(self.settings.method, net, case.risk)
            enqueue, risk, reason = decision.enqueue, decision.risk, decision.reason
        return {"post_id": post_id, "net": net, "decision": ENQUEUE if enqueue else SKIP,
                "score": case.score, "risk": risk, "reason": reason, "decided_at": iso_utc(),
                "published": 0}

    async def _publish(self, decision: dict[str, Any], user_id: str) -> None:
        await self.records.enqueue(decision)
        event = {"post_id": decision["post_id"], "user_id": user_id, "net": decision["net"],
                 "score": decision["score"], "risk": decision["risk"],
                 "reason": decision["reason"], "enqueued_at": decision["decided_at"]}
        await self.producer.produce(self.topic, orjson.dumps(event),
                                    decision["post_id"].encode())
        await self.records.mark_published(decision)


def account(metrics: Metrics, views: ViewsMessage, case: TriageCase) -> None:
    metrics.verdicts.labels(NAME, "decided").inc()
    metrics.end_to_end.labels(NAME).observe(max(0.0, time.time() - views.at))


async def open_stages(opened: Resources) -> Stages[ViewsMessage, TriageCase]:
    """The triage stages, and the history endpoint until the daemon stops; raises
    :class:`~orchestrator.errors.ConfigError` for a policy that does not cover the nets."""
    config, store, metrics = opened.config, opened.store, opened.metrics
    settings = config.triage
    settings.require_history_token()
    policy = TriagePolicy.load(settings.policy_path)
    for net in settings.nets:
        policy.threshold(settings.method, net)  # fail at start, not per message
        metrics.review_enqueued.labels(str(net))
        metrics.review_skipped.labels(str(net))
    history = HistoryRepository(store, window_days=settings.history_days,
                                ttl_s=settings.cache_ttl_s, max_users=settings.cache_size)
    records = TriageRecords(store)
    if settings.history_port:
        runner = await history_api.start(history, settings.history_addr, settings.history_port,
                                         settings.history_token)
        opened.stack.push_async_callback(runner.cleanup)
    return Stages(
        name=NAME,
        parse=parse_views,
        scorer=CaseScorer(records, history, policy, settings.method),
        sinks=[TriageBook(records, opened.producer, config.kafka.output_topic, policy, settings,
                          metrics)],
        account=partial(account, metrics))
