"""One boundary per request in the handler: a body the decoder chokes on, or an input the
model fails on, fails alone; its batch mates are scored. TorchServe would otherwise answer
the whole batch with 503."""

from __future__ import annotations

from typing import Any

import torch

from handlers.batch_handler import BatchHandler, Rows
from tests.handlers.fake_context import FakeContext


class PickyModel(torch.nn.Module):
    """Doubles its input, except that a row holding -1 makes it raise."""

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        if bool((rows == -1).any()):
            raise RuntimeError("the model cannot take -1")
        return rows * 2


class NumberHandler(BatchHandler):
    def decode(self, body: Any) -> Rows:
        value = {b"one": 1.0, b"two": 2.0, b"poison": -1.0}[bytes(body)]  # KeyError else
        return Rows((torch.tensor([[value]]),))

    def postprocess(self, outputs, infos):
        return [{"value": rows.item()} for rows in outputs]


def handler() -> NumberHandler:
    instance = NumberHandler()
    instance.device, instance.model, instance.max_rows = torch.device("cpu"), PickyModel(), 8
    return instance


def test_a_body_the_decoder_chokes_on_fails_alone():
    ctx = FakeContext()
    results = handler().handle([{"body": b"one"}, {"body": b"\xff?"}, {"body": b"two"}], ctx)
    assert [r.get("value") for r in results] == [2.0, None, 4.0]
    assert ctx.statuses[1][0] == 422 and "KeyError" in results[1]["error"]


def test_an_input_the_model_fails_on_fails_alone():
    ctx = FakeContext()
    results = handler().handle([{"body": b"one"}, {"body": b"poison"}, {"body": b"two"}], ctx)
    assert [r.get("value") for r in results] == [2.0, None, 4.0]
    assert ctx.statuses == {1: (422, ctx.statuses[1][1])}
    assert "cannot take -1" in results[1]["error"]


def test_in_a_multi_item_request_the_failure_is_the_part_answer():
    results = handler().handle([{"0": b"one", "1": b"poison", "2": b"bogus"}], FakeContext())
    parts = results[0]
    assert parts[0] == {"value": 2.0}
    assert parts[1]["status"] == 422 and parts[2]["status"] == 422
