"""Everything that speaks to the broker (confluent-kafka): the source, the event and
dead-letter sinks, and the broker's error translation."""

from orchestrator.kafka.sinks import DeadLetterSink, EventProducer, TopicSink
from orchestrator.kafka.source import CONSUME_BATCH, KafkaSource

__all__ = ["CONSUME_BATCH", "DeadLetterSink", "EventProducer", "KafkaSource", "TopicSink"]
