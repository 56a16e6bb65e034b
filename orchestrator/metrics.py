"""The daemon's Prometheus metrics (names fixed by DESIGN.md), on their own registry."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)

# vigil_score: fixed on [0, 1] so every model version's histogram compares with another's.
SCORE_BUCKETS = tuple(round(0.05 * step, 2) for step in range(1, 21))
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
                   600, 1200)


class Metrics:
    """Every ``vigil_`` metric. One instance per process; tests make their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages_consumed = Counter(
            "vigil_messages_consumed_total", "Messages read from Kafka", ["pipeline"], registry=r)
        self.batch_size = Histogram(
            "vigil_batch_size", "Items per batch", buckets=(1, 2, 3, 4, 5, 6, 7, 8), registry=r)
        self.batch_wait = Histogram(
            "vigil_batch_wait_seconds", "First item to batch close", buckets=LATENCY_BUCKETS,
            registry=r)
        self.inference = Histogram(
            "vigil_inference_seconds", "Model request latency", ["model"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.media_fetch = Histogram(
            "vigil_media_fetch_seconds", "Time to fetch a message's media", ["pipeline"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.end_to_end = Histogram(
            "vigil_end_to_end_seconds", "Result time minus the message's creation time",
            ["pipeline"], buckets=LATENCY_BUCKETS, registry=r)
        self.verdicts = Counter(
            "vigil_verdicts_total", "Verdicts produced", ["pipeline", "label"], registry=r)
        self.dead_letters = Counter(
            "vigil_dead_letters_total", "Messages sent to the DLQ", ["pipeline", "reason"],
            registry=r)
        self.retries = Counter(
            "vigil_retries_total", "Retried model or media requests", ["pipeline"], registry=r)
        self.in_flight = Gauge(
            "vigil_in_flight", "Consumed, not yet finished messages", ["pipeline"], registry=r)
        self.paused_partitions = Gauge(
            "vigil_paused_partitions", "Partitions paused for backpressure", ["pipeline"],
            registry=r)
        self.side_effect_errors = Counter(
            "vigil_side_effect_errors_total", "Failed fire-and-forget side effects", ["kind"],
            registry=r)
        self.consumer_lag = Gauge(
            "vigil_consumer_lag", "High watermark minus consumed position",
            ["topic", "partition"], registry=r)
        self.vrt_sla_missed = Counter(
            "vigil_vrt_sla_missed_total", "Posts scored more than 10 minutes after creation",
            registry=r)
        self.review_enqueued = Counter(
            "vigil_review_enqueued_total", "Posts sent to manual review", ["net"], registry=r)
        self.review_skipped = Counter(
            "vigil_review_skipped_total", "Posts the triage skipped", ["net"], registry=r)
        self.score = Histogram(
            "vigil_score", "Scores written, per model version and routed language",
            ["pipeline", "model", "version", "language"], buckets=SCORE_BUCKETS, registry=r)
        self.scored_by = Counter(
            "vigil_audio_scored_by_total",
            "Clips per model version by what scored them: the model, or the energy gate",
            ["model", "version", "scored_by"], registry=r)
        self.quality_precision = Gauge(
            "vigil_quality_precision", "Precision at the threshold, from moderators' decisions",
            ["model", "version", "language"], registry=r)
        self.quality_recall = Gauge(
            "vigil_quality_recall", "Recall at the threshold, from moderators' decisions",
            ["model", "version", "language"], registry=r)
        self.quality_recall_estimate = Gauge(
            "vigil_quality_recall_estimate", "Recall estimated from the audit sample "
            "(inverse-probability weighted), with its 95% interval",
            ["model", "version", "language", "bound"], registry=r)
        self.quality_precision_estimate = Gauge(
            "vigil_quality_precision_estimate", "Precision from the decided flagged clips, "
            "with its 95% interval", ["model", "version", "language", "bound"], registry=r)
        self.quality_recall_naive = Gauge(
            "vigil_quality_recall_naive", "Recall from decisions alone (audited misses "
            "unweighted): biased up, shown for comparison", ["model", "version", "language"],
            registry=r)
        self.quality_audited = Gauge(
            "vigil_quality_audited", "Decided audit-sample clips behind the estimates",
            ["model", "version", "language"], registry=r)
        self.score_psi = Gauge(
            "vigil_score_psi", "PSI of the recent scores against the version's reference",
            ["model", "version", "language"], registry=r)
        self.review_decisions = Counter(
            "vigil_review_decisions_total", "Decisions moderators made on the review page "
            "(sent after their undo delay)", ["decision"], registry=r)
        self.score_drift_p_value = Gauge(
            "vigil_score_drift_p_value", "KS test p-value of the recent scores against the "
            "version's reference: small means the drift PSI shows is not chance",
            ["model", "version", "language"], registry=r)
        self.shadow_flip_rate = Gauge(
            "vigil_shadow_flip_rate", "Share of shadow-scored clips whose label the candidate "
            "changes, in the rollout's current step", ["model", "language"], registry=r)
        self.rollout_state = Gauge(
            "vigil_rollout_state", "Rollout step: 0 shadow, 1.. canary shares, then live; "
            "-1 rolled back", ["model", "language"], registry=r)
        self.rollout_gate = Gauge(
            "vigil_rollout_gate", "A gate's value in the rollout's current step",
            ["model", "language", "gate"], registry=r)
        self.rollout_gate_bound = Gauge(
            "vigil_rollout_gate_bound", "A gate's interval in the rollout's current step (at "
            "rollout.confidence): it fails over its limit, passes under it",
            ["model", "language", "gate", "bound"], registry=r)
        self.rollout_inconclusive = Gauge(
            "vigil_rollout_inconclusive", "1 while a rollout waits for a person: its gates "
            "did not decide within rollout.max_samples", ["model", "language"], registry=r)
        self.rollbacks = Counter(
            "vigil_rollbacks_total", "Rollouts this daemon rolled back on a failing gate",
            ["model", "language"], registry=r)
        self.shadow_dropped = Counter(
            "vigil_shadow_dropped_total", "Shadow requests not made or not recorded",
            ["model", "language", "reason"], registry=r)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Expose ``/metrics`` on ``port`` from a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)


def labelled(metric: M) -> Callable[..., M]:
    """``metric.labels``, remembered per label values, for calls made per message: each
    ``labels`` call re-validates and re-stringifies its values under a lock (measured: 7% of
    the daemon's samples with a trivial model). Only for labels of bounded cardinality."""
    return functools.cache(metric.labels)
