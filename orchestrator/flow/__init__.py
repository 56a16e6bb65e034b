"""The spine every pipeline runs on: consume, parse, batch (fan-in), score (fan-out),
write, acknowledge in offset order, dead-letter with the reason. Its seams are
:class:`Scorer` and :class:`Sink`; it imports no service client."""

from orchestrator.flow.acknowledger import Acknowledger
from orchestrator.flow.background import BackgroundTasks, Periodic, stop_on_signals
from orchestrator.flow.backpressure import Backpressure
from orchestrator.flow.batcher import MicroBatcher
from orchestrator.flow.offsets import OffsetTracker
from orchestrator.flow.outcomes import Failure, gather_outcomes
from orchestrator.flow.retry import Health, RetryPolicy
from orchestrator.flow.seams import Scorer, Sink
from orchestrator.flow.spine import Flow, FlowStopped, Stages

__all__ = [
    "Acknowledger", "BackgroundTasks", "Backpressure", "Failure", "Flow", "FlowStopped",
    "Health", "MicroBatcher", "OffsetTracker", "Periodic", "RetryPolicy", "Scorer", "Sink",
    "Stages", "gather_outcomes", "stop_on_signals",
]
