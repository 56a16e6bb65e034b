"""TorchServe's handler lifecycle over a whole batch, with errors kept per request.

Model families subclass :class:`BatchHandler` and supply ``decode`` (one request body to one
model input) and ``postprocess`` (model output to one response per input). One bad request
gets its own 4xx status through ``context.set_response_status(code, phrase, idx)`` while
the rest of the batch is scored.

A request carries one item as its body, or several as multipart parts named ``0``, ``1``, ...
(one HTTP request for a whole batch). A multi-item request is answered with a list holding,
per part, its response or ``{"error", "status"}``: one bad part fails alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import torch

from handlers import runtime
from handlers.errors import BadInput

logger = logging.getLogger(__name__)


@dataclass
class Rows:
    """One request decoded: model-input rows (leading dim = rows, maybe 0) and notes."""

    inputs: tuple[torch.Tensor, ...]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return int(self.inputs[0].shape[0])


@dataclass
class PreparedBatch:
    """The decoded bodies' rows concatenated, and the bodies that failed."""

    indices: list[int] = field(default_factory=list)
    decoded: list[Rows] = field(default_factory=list)
    failures: dict[int, BadInput] = field(default_factory=dict)

    def inputs(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        parts = zip(*(rows.inputs for rows in self.decoded))
        return tuple(torch.cat(part).to(device) for part in parts)


def request_body(request: dict[str, Any]) -> Any:
    """The payload TorchServe hands over for one request (``data`` or ``body``)."""
    body = request.get("data")
    return request.get("body") if body is None else body


def request_parts(request: dict[str, Any]) -> list[Any] | None:
    """A multi-item request's parts ``0``, ``1``, ... in order; ``None`` for a plain request."""
    parts = []
    while str(len(parts)) in request:
        parts.append(request[str(len(parts))])
    return parts or None


def reason_phrase(message: str, limit: int = 200) -> str:
    """``message`` as an HTTP reason phrase: printable ASCII only.

    TorchServe 0.12's worker protocol frames the phrase with its length in characters but
    writes its UTF-8 bytes, so one non-ASCII character (a "±", or a user's text echoed in an
    error) corrupts the frame and the frontend kills the worker with every request it holds.
    A line break would also end the status line early.
    """
    printable = "".join(c if " " <= c <= "~" else "?" for c in message)
    return printable[:limit]


def error_response(error: BadInput) -> dict[str, Any]:
    return {"error": error.message, "status": error.status}


def run_in_chunks(run: runtime.Run, inputs: Sequence[torch.Tensor], rows: int) -> torch.Tensor:
    """``run`` over ``inputs`` ``rows`` at a time, the outputs concatenated: how the handler
    calls a model, and what ``layout: auto`` times (modelzoo/layout.py)."""
    total = inputs[0].shape[0]
    return torch.cat([run(*(part[start:start + rows] for part in inputs))
                      for start in range(0, total, rows)])


def pick_device(properties: dict[str, Any]) -> torch.device:
    """The GPU TorchServe assigned to this worker, else the CPU."""
    gpu_id = properties.get("gpu_id")
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{gpu_id}")
    return torch.device("cpu")


class BatchHandler:
    """Loads a traced model once, then scores whole batches of requests.

    A request may decode to several rows (a video's frames, an audio track's examples) or
    none (no audio track): all rows of the batch go through the model together, in chunks
    of ``max_rows``, and each request gets its own rows' outputs back.
    """

    device: torch.device
    settings: dict[str, Any]
    model: runtime.Run  # whichever engine the archive holds: tensors in, a tensor out
    max_rows: int = 64

    # -- lifecycle ------------------------------------------------------------------------
    def initialize(self, context: Any) -> None:
        """Load the artifact named in the archive manifest and warm it up."""
        properties = context.system_properties
        self.device = pick_device(properties)
        self.settings = dict((context.model_yaml_config or {}).get("handler", {}))
        self.max_rows = int(self.settings.get("max_rows", self.max_rows))
        threads = int(self.settings.get("intra_op_threads") or 0) or runtime.worker_threads(
            runtime.available_cores(), int(self.settings.get("workers_served_together", 1)))
        # Several workers share the host's cores: without this each grabs all of them.
        torch.set_num_threads(threads)
        serialized = context.manifest["model"]["serializedFile"]
        loaded = runtime.load(os.path.join(properties["model_dir"], serialized),
                              device=self.device, threads=threads,
                              precision=str(self.settings.get("precision", "fp32")))
        self.model = loaded.run
        self.identity = {"model": self.settings.get("model_name", type(self).__name__),
                         "model_version": str(self.settings.get("model_version", "1.0")),
                         "engine": loaded.engine, "precision": loaded.precision}
        self.setup(properties["model_dir"])
        self.warm_up(int(properties.get("batch_size") or 1))
        logger.info("loaded %s (%s, %s) on %s with %d threads", serialized, loaded.engine,
                    loaded.precision, self.device, threads)

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        """Score a batch: one response per request, bad requests answered with their 4xx."""
        requests = [request_parts(request) for request in data]
        bodies = [body for parts, request in zip(requests, data)
                  for body in (parts or [request_body(request)])]
        results = iter(self.score(bodies))
        outputs: list[Any] = []
        for index, parts in enumerate(requests):
            if parts is not None:
                outputs.append([error_response(result) if isinstance(result, BadInput) else result
                                for result in islice(results, len(parts))])
                continue
            result = next(results)
            if isinstance(result, BadInput):
                context.set_response_status(result.status, reason_phrase(result.message), index)
                result = error_response(result)
            outputs.append(result)
        return outputs

    def score(self, bodies: list[Any]) -> list[Any]:
        """One response per body, or the :class:`BadInput` that body raised.

        One boundary per body: whatever decoding one body raises fails that body alone
        (422), and when the model fails on the batch each body is run alone, so only the
        inputs the model cannot take fail (422; 507 for running out of memory, which the
        caller may retry).
        """
        prepared = self.preprocess(bodies)
        results: list[Any] = [prepared.failures.get(index) for index in range(len(bodies))]
        if prepared.indices:
            try:
                responses = self._respond(prepared)
            except Exception:  # noqa: BLE001 - find the input the model cannot take
                logger.exception("the model failed on a batch of %d: running each alone",
                                 len(prepared.decoded))
                responses = [self._respond_alone(rows) for rows in prepared.decoded]
            for index, response in zip(prepared.indices, responses):
                results[index] = response
        return results

    def _respond(self, prepared: PreparedBatch) -> list[Any]:
        responses = self.postprocess(self.run_model(prepared), [r.info for r in prepared.decoded])
        if len(responses) != len(prepared.decoded):
            raise RuntimeError(
                f"model gave {len(responses)} results for {len(prepared.decoded)} inputs")
        return responses

    def _respond_alone(self, rows: Rows) -> Any:
        try:
            return self._respond(PreparedBatch(indices=[0], decoded=[rows]))[0]
        except Exception as exc:  # noqa: BLE001 - this input's failure, answered alone
            logger.exception("the model failed on one input")
            out_of_memory = isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError))
            return BadInput(f"the model failed on this input: {type(exc).__name__}: {exc}",
                            status=507 if out_of_memory else 422)

    def preprocess(self, bodies: list[Any]) -> PreparedBatch:
        """Decode every body; collect the failures instead of raising."""
        prepared = PreparedBatch()
        for index, body in enumerate(bodies):
            try:
                prepared.decoded.append(self.decode(body))
                prepared.indices.append(index)
            except BadInput as exc:
                prepared.failures[index] = exc
            except Exception as exc:  # noqa: BLE001 - a decoder's surprise fails its body only
                logger.exception("decoding request %d failed unexpectedly", index)
                prepared.failures[index] = BadInput(
                    f"could not decode: {type(exc).__name__}: {exc}", status=422)
        return prepared

    def run_model(self, prepared: PreparedBatch) -> list[torch.Tensor]:
        """Run every row of the batch through the model; one output tensor per request."""
        counts = [rows.count for rows in prepared.decoded]
        if not sum(counts):
            return [torch.empty(0) for _ in counts]
        outputs = self.inference(prepared.inputs(self.device))
        return list(torch.split(outputs, counts))

    def inference(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Run the model over the rows in chunks of ``max_rows``."""
        with torch.inference_mode():
            return run_in_chunks(self.model, inputs, self.max_rows)

    # -- what a model family supplies -----------------------------------------------------
    def setup(self, model_dir: str) -> None:
        """Read family-specific files from the archive (labels, tokenizer, ...)."""

    def example_input(self) -> Rows:
        """One request's worth of rows, for the warm-up."""
        raise NotImplementedError

    def decode(self, body: Any) -> Rows:
        """One request body to its model-input rows; raise :class:`BadInput` when it cannot be."""
        raise NotImplementedError

    def postprocess(self, outputs: list[torch.Tensor], infos: list[dict[str, Any]]) -> list[Any]:
        """Each request's output rows (and decode notes) to one JSON-serialisable response."""
        raise NotImplementedError

    def warm_up(self, batch_size: int) -> None:
        """Run the largest and smallest batch once so the first request pays no compile cost."""
        example = tuple(part[:1].to(self.device) for part in self.example_input().inputs)
        for size in sorted({1, max(1, batch_size)}):
            self.inference(tuple(part.expand(size, *part.shape[1:]) for part in example))
