"""The dead letter's headers: the reason it is filed under and how often the call was tried."""

from __future__ import annotations

import pytest

from orchestrator.config import RetryConfig
from orchestrator.errors import DeliveryError, ModelUnavailable, UndecodableMedia
from orchestrator.retry import RetryPolicy
from orchestrator.sinks import DeadLetterSink
from tests.orchestrator.fakes import envelope


class RecordingProducer:
    """Keeps what is produced; refuses values over ``max_bytes`` like a broker would."""

    def __init__(self, max_bytes: int = 1_000_000) -> None:
        self.max_bytes = max_bytes
        self.records: list[tuple[str, bytes, bytes | None, dict[str, bytes]]] = []

    async def produce(self, topic, value, key=None, headers=None) -> None:
        if len(value) > self.max_bytes:
            raise DeliveryError("Broker: Message size too large")
        self.records.append((topic, value, key, dict(headers or [])))


async def failing_after_retries(calls: list[int]) -> None:
    calls.append(1)
    raise ModelUnavailable("audio_nsfw_hi 1.0: HTTP 503")


async def test_a_dead_letter_carries_the_real_number_of_attempts_and_its_reason():
    calls: list[int] = []
    policy = RetryPolicy(RetryConfig(budget_s=0.3, backoff_s=0.01, backoff_max_s=0.02))
    with pytest.raises(ModelUnavailable) as caught:
        await policy.call(failing_after_retries, calls)
    producer = RecordingProducer()
    reason = await DeadLetterSink(producer, "in.dlq").send(envelope(7), caught.value)
    topic, value, _, headers = producer.records[0]
    assert reason == "model_unavailable" and topic == "in.dlq"
    assert headers["vigil-attempts"] == str(len(calls)).encode() and len(calls) > 1
    assert headers["vigil-reason"] == b"model_unavailable"
    assert headers["vigil-original-offset"] == b"7"
    assert value == envelope(7).value  # the original, unchanged


async def test_a_refusal_is_tried_once_and_a_record_too_large_goes_without_its_value():
    producer = RecordingProducer(max_bytes=1)  # smaller than the value, not the headers
    letter = envelope(3)
    error = UndecodableMedia("not audio")
    error.attempts = 1
    assert await DeadLetterSink(producer, "in.dlq").send(letter, error) == "undecodable_media"
    _, value, key, headers = producer.records[0]
    assert value == b"" and key == letter.key
    assert headers["vigil-attempts"] == b"1"
    assert headers["vigil-value-omitted"] == f"{len(letter.value)} bytes".encode()
