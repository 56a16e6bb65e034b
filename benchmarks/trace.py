"""Where a clip's time goes under load, from what the services already expose.

Per clip, exactly, from each verdict event: the broker and intake (``created_at`` to the
daemon reading it: end to end minus the event's ``latency_ms``) and the daemon (read to
scored: ``latency_ms``). Per stage, as means over the run, from counters read before and
after it: the daemon's batch wait and model requests (``vigil_batch_wait_seconds``,
``vigil_inference_seconds``) and, inside a model request, TorchServe's queue and the rest of
its time (``ts_queue_latency_microseconds``, ``ts_inference_latency_microseconds``).
Writes and commits come after ``scored_at`` and are not part of this latency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.stack import Served

SUMS = ("vigil_batch_wait_seconds_sum", "vigil_batch_wait_seconds_count",
        "vigil_inference_seconds_sum", "vigil_inference_seconds_count",
        "ts_queue_latency_microseconds", "ts_inference_latency_microseconds",
        "ts_inference_requests")


def totals(*metrics_texts: str) -> dict[str, float]:
    """Each of :data:`SUMS`, summed over its label sets, from Prometheus text.

    The parser names every counter sample ``*_total``, whether or not TorchServe did, so
    names are compared without that suffix.
    """
    found = dict.fromkeys(SUMS, 0.0)
    for text in metrics_texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name = sample.name.removesuffix("_total")
                if name in found:
                    found[name] += sample.value
    return found


@dataclass
class Counters:
    """A reading of the daemon's and TorchServe's counters."""

    values: dict[str, float]

    @classmethod
    def read(cls, path: Served) -> Counters:
        return cls(totals(path.daemon.metrics(), path.server.metrics()))

    def since(self, earlier: Counters) -> dict[str, float]:
        return {name: self.values[name] - earlier.values[name] for name in SUMS}


def _mean_ms(total: float, count: float, unit_s: float) -> float | None:
    return 1000 * unit_s * total / count if count else None


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (``fraction`` in [0, 1])."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _percentiles_ms(values: list[float]) -> dict[str, float]:
    return {"p50_ms": 1000 * percentile(values, 0.5), "p99_ms": 1000 * percentile(values, 0.99)}


def breakdown(events: list[dict], before: Counters, after: Counters) -> dict:
    """The stages of the clips in ``events``, scored between the two counter readings."""
    end_to_end, in_daemon = [], []
    for event in events:
        total = (datetime.fromisoformat(event["scored_at"])
                 - datetime.fromisoformat(event["created_at"])).total_seconds()
        end_to_end.append(total)
        in_daemon.append(event["latency_ms"] / 1000)
    delta = after.since(before)
    return {
        "end_to_end": _percentiles_ms(end_to_end),
        "broker_and_intake": _percentiles_ms([t - d for t, d in zip(end_to_end, in_daemon)]),
        "in_daemon": _percentiles_ms(in_daemon),
        "batch_wait_mean_ms": _mean_ms(delta["vigil_batch_wait_seconds_sum"],
                                       delta["vigil_batch_wait_seconds_count"], 1),
        "model_request_mean_ms": _mean_ms(delta["vigil_inference_seconds_sum"],
                                          delta["vigil_inference_seconds_count"], 1),
        "torchserve_queue_mean_ms": _mean_ms(delta["ts_queue_latency_microseconds"],
                                             delta["ts_inference_requests"], 1e-6),
        "torchserve_mean_ms": _mean_ms(delta["ts_inference_latency_microseconds"],
                                       delta["ts_inference_requests"], 1e-6),
    }
