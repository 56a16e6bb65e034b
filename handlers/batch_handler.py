"""TorchServe's handler lifecycle over a whole batch, with errors kept per request.

Model families subclass :class:`BatchHandler` and supply ``decode`` (one request body to one
model input) and ``postprocess`` (model output to one response per input). One bad request
gets its own 4xx status through ``context.set_response_status(code, phrase, idx)`` while
the rest of the batch is scored.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from handlers.errors import BadInput

logger = logging.getLogger(__name__)


@dataclass
class PreparedBatch:
    """The decodable requests stacked into one tensor, and the ones that failed."""

    indices: list[int] = field(default_factory=list)
    inputs: torch.Tensor | None = None
    failures: dict[int, BadInput] = field(default_factory=dict)


def request_body(request: dict[str, Any]) -> Any:
    """The payload TorchServe hands over for one request (``data`` or ``body``)."""
    body = request.get("data")
    return request.get("body") if body is None else body


def pick_device(properties: dict[str, Any]) -> torch.device:
    """The GPU TorchServe assigned to this worker, else the CPU."""
    gpu_id = properties.get("gpu_id")
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{gpu_id}")
    return torch.device("cpu")


class BatchHandler:
    """Loads a traced model once, then scores whole batches of requests."""

    device: torch.device
    settings: dict[str, Any]
    model: torch.jit.ScriptModule

    # -- lifecycle ------------------------------------------------------------------------
    def initialize(self, context: Any) -> None:
        """Load the serialised model named in the archive manifest and warm it up."""
        properties = context.system_properties
        self.device = pick_device(properties)
        self.settings = dict((context.model_yaml_config or {}).get("handler", {}))
        threads = int(self.settings.get("intra_op_threads", 0))
        if threads > 0:
            # Several workers share the host's cores: without this each grabs all of them.
            torch.set_num_threads(threads)
        serialized = context.manifest["model"]["serializedFile"]
        path = os.path.join(properties["model_dir"], serialized)
        self.model = torch.jit.load(path, map_location=self.device).eval()
        self.setup(properties["model_dir"])
        self.warm_up(int(properties.get("batch_size") or 1))
        logger.info("loaded %s on %s", serialized, self.device)

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        """Score a batch: one response per request, bad requests answered with their 4xx."""
        prepared = self.preprocess(data)
        outputs: list[Any] = [None] * len(data)
        for index, error in prepared.failures.items():
            context.set_response_status(error.status, error.message[:200], index)
            outputs[index] = {"error": error.message, "status": error.status}
        if prepared.indices:
            results = self.postprocess(self.inference(prepared.inputs))
            if len(results) != len(prepared.indices):
                raise RuntimeError(
                    f"model gave {len(results)} results for {len(prepared.indices)} inputs"
                )
            for index, result in zip(prepared.indices, results):
                outputs[index] = result
        return outputs

    def preprocess(self, data: list[dict[str, Any]]) -> PreparedBatch:
        """Decode every request; collect the failures instead of raising."""
        prepared = PreparedBatch()
        decoded = []
        for index, request in enumerate(data):
            try:
                decoded.append(self.decode(request_body(request)))
                prepared.indices.append(index)
            except BadInput as exc:
                prepared.failures[index] = exc
        if decoded:
            prepared.inputs = torch.stack(decoded).to(self.device)
        return prepared

    def inference(self, inputs: torch.Tensor) -> torch.Tensor:
        """Run the model once over the stacked batch."""
        with torch.inference_mode():
            return self.model(inputs)

    # -- what a model family supplies -----------------------------------------------------
    def setup(self, model_dir: str) -> None:
        """Read family-specific files from the archive (labels, tokenizer, ...)."""

    def example_input(self) -> torch.Tensor:
        """One input of the shape ``decode`` returns, for the warm-up."""
        raise NotImplementedError

    def decode(self, body: Any) -> torch.Tensor:
        """One request body to one model input; raise :class:`BadInput` when it cannot be."""
        raise NotImplementedError

    def postprocess(self, outputs: torch.Tensor) -> list[Any]:
        """Model outputs to one JSON-serialisable response per input."""
        raise NotImplementedError

    def warm_up(self, batch_size: int) -> None:
        """Run the largest and smallest batch once so the first request pays no compile cost."""
        example = self.example_input().to(self.device)
        for size in sorted({1, max(1, batch_size)}):
            self.inference(example.expand(size, *example.shape))
