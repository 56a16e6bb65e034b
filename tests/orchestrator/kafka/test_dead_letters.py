"""The dead letter's headers (the reason it is filed under, how often the call was tried), and
records the broker refuses for their size: reduced until written, never a reason to stop."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from orchestrator.config import RetryConfig
from orchestrator.errors import (
    BrokerUnavailable,
    DeliveryError,
    InvalidField,
    ModelUnavailable,
    UndecodableMedia,
)
from orchestrator.flow import RetryPolicy
from orchestrator.kafka import DeadLetterSink, TopicSink
from orchestrator.messages import Envelope
from tests.orchestrator.fakes import envelope


class RecordingProducer:
    """Keeps what is produced; refuses records over ``max_bytes`` (value, key and headers)
    like a broker would, or every record with ``down``."""

    def __init__(self, max_bytes: int = 1_000_000, down: bool = False) -> None:
        self.max_bytes = max_bytes
        self.down = down
        self.refused = 0
        self.records: list[tuple[str, bytes, bytes | None, dict[str, bytes]]] = []

    async def produce(self, topic, value, key=None, headers=None) -> None:
        if self.down:
            raise BrokerUnavailable("all brokers down")
        size = len(value) + len(key or b"") + sum(len(n) + len(v) for n, v in headers or [])
        if size > self.max_bytes:
            self.refused += 1
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
    producer = RecordingProducer(max_bytes=600)  # smaller than the value, not the headers
    letter = Envelope("in", 0, 3, b"k3", b"v" * 1000)
    error = UndecodableMedia("not audio")
    error.attempts = 1
    assert await DeadLetterSink(producer, "in.dlq").send(letter, error) == "undecodable_media"
    _, value, key, headers = producer.records[0]
    assert value == b"" and key == letter.key
    assert headers["vigil-attempts"] == b"1"
    assert headers["vigil-value-omitted"] == f"{len(letter.value)} bytes".encode()


async def test_a_key_too_large_for_any_record_is_replaced_by_its_length_and_hash():
    key = b"k" * 999_900  # a default producer takes it; with the headers it is too large
    letter = Envelope("in", 2, 41, key, b'{"clip_id": "c"}')
    error = InvalidField("the record key is 999700 bytes, over 1024\nCRITICAL forged")
    producer = RecordingProducer(max_bytes=1_000_000)
    assert await DeadLetterSink(producer, "in.dlq").send(letter, error) == "invalid_field"
    assert producer.refused == 2  # whole, then without its value
    _, value, written_key, headers = producer.records[0]
    assert value == b"" and written_key is None
    assert headers["vigil-key-omitted"] == (
        f"999900 bytes sha256:{hashlib.sha256(key).hexdigest()}".encode())
    assert headers["vigil-original-offset"] == b"41"
    assert b"\n" not in headers["vigil-error-message"]  # no forged header line
    assert b"\\x0aCRITICAL" in headers["vigil-error-message"]


async def test_an_unreachable_broker_is_not_reduced_away():
    with pytest.raises(BrokerUnavailable):
        await DeadLetterSink(RecordingProducer(down=True), "in.dlq").send(
            envelope(1), UndecodableMedia("x"))


async def test_headers_alone_refused_is_the_one_delivery_error_left():
    producer = RecordingProducer(max_bytes=10)
    with pytest.raises(DeliveryError):
        await DeadLetterSink(producer, "in.dlq").send(envelope(1), UndecodableMedia("x"))
    assert producer.refused == 3 and producer.records == []


async def test_an_event_too_large_goes_as_its_summary():
    producer = RecordingProducer(max_bytes=200)
    sink = TopicSink(producer, "out", key=lambda r: r["id"].encode(),
                     event=lambda r: {"id": r["id"], "score": 0.5, "extra": r["extra"]},
                     summary=lambda r: {"id": r["id"], "score": 0.5})
    await sink.write([{"id": "a", "extra": "x" * 500}, {"id": "b", "extra": "y"}])
    events = {key: orjson.loads(value) for _, value, key, _ in producer.records}
    assert events[b"a"] == {"id": "a", "score": 0.5, "input_omitted": True}
    assert events[b"b"] == {"id": "b", "score": 0.5, "extra": "y"}
