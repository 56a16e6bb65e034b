"""Handler for ``xlmr_text``: one text per request (JSON ``{"text": ...}`` or plain UTF-8)
-> its mean-pooled XLM-R embedding, tokenised to the archive's fixed ``max_length``."""

from __future__ import annotations

import json
from typing import Any

import torch

from handlers.batch_handler import BatchHandler, Rows
from handlers.errors import BadInput


def request_text(body: Any) -> str:
    """The text of a request body: a JSON object's ``text``, or the body itself."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInput(f"text is not UTF-8: {exc}") from exc
        if body.lstrip().startswith("{"):
            try:
                body = json.loads(body)
            except json.JSONDecodeError as exc:
                raise BadInput(f"invalid JSON: {exc}") from exc
    if isinstance(body, dict):
        body = body.get("text")
    if not isinstance(body, str) or not body.strip():
        raise BadInput("no text to embed")
    return body


class XlmrTextHandler(BatchHandler):
    def setup(self, model_dir: str) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.max_length = int(self.settings["max_length"])

    def _tokenize(self, text: str) -> Rows:
        encoded = self.tokenizer([text], padding="max_length", truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
        return Rows((encoded["input_ids"], encoded["attention_mask"]))

    def example_input(self) -> Rows:
        return self._tokenize("warm up")

    def decode(self, body: Any) -> Rows:
        return self._tokenize(request_text(body))

    def postprocess(self, outputs: list[torch.Tensor], infos: list[dict]) -> list[dict[str, Any]]:
        return [{"embedding": rows[0].float().cpu().tolist(), "embedding_dim": int(rows.shape[1]),
                 **self.identity} for rows in outputs]
