"""librdkafka's errors as the daemon sees them: which to retry, and which to shout about."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError

from orchestrator.errors import BrokerUnavailable, DeliveryError, VigilError

logger = logging.getLogger(__name__)
# Refusals no retry can change: the record itself, or this client's rights.
REFUSED = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE,
                     KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_RECORD,
                     KafkaError.TOPIC_AUTHORIZATION_FAILED,
                     KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError._INVALID_ARG})
UNREACHABLE = frozenset({KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT,
                         KafkaError._RESOLVE, KafkaError._AUTHENTICATION})


def delivery_error(error: KafkaError) -> VigilError:
    """A failed produce as :class:`DeliveryError` (for good) or :class:`BrokerUnavailable`."""
    if error.code() in REFUSED:
        return DeliveryError(f"broker refused the record: {error.str()}")
    return BrokerUnavailable(f"broker did not acknowledge: {error.str()}")


def log_broker_error(error: KafkaError) -> None:
    """librdkafka's ``error_cb``: a broker that cannot be reached is an error an operator
    must see at once, not a silent wait."""
    if error.code() in UNREACHABLE:
        logger.error("Kafka broker unreachable: %s", error.str())
    else:
        logger.warning("Kafka client error: %s", error.str())
