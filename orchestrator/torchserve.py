"""TorchServe inference client: one shared httpx.AsyncClient, token auth, retries.

Errors are translated here: the handler's per-request 4xx becomes :class:`UndecodableMedia`
(dead letter), connection failures, timeouts, 5xx and 503/507 become transient errors that
are retried with exponential backoff. A refused key (401, or TorchServe 0.12's
400 InvalidKeyException) makes the client re-read ``key_file.json`` once and try again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from orchestrator.config import TorchServeConfig
from orchestrator.errors import (AuthError, MediaTooLarge, ModelTimeout, ModelUnavailable,
                                 TransientError, UndecodableMedia)

logger = logging.getLogger(__name__)
OVERLOADED = (503, 507)


def read_inference_key(path: Path) -> str:
    """The inference key from TorchServe's key file; raises :class:`AuthError` if unreadable."""
    try:
        return json.loads(path.read_text())["inference"]["key"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AuthError(f"cannot read the inference key from {path}: {exc}") from exc


def _is_auth_refusal(response: httpx.Response) -> bool:
    if response.status_code == 401:
        return True
    return response.status_code == 400 and b"InvalidKeyException" in response.content


def _error_text(response: httpx.Response) -> str:
    """The handler's ``error`` field when the body is its JSON, else the body's start."""
    try:
        return str(response.json().get("error"))[:300]
    except (ValueError, AttributeError):
        return response.text[:300]


class TorchServeClient:
    """Posts one payload to ``/predictions/<model>`` and returns the decoded JSON."""

    def __init__(self, config: TorchServeConfig, *,
                 on_retry: Callable[[TransientError], None] | None = None,
                 on_overload: Callable[[bool], None] | None = None) -> None:
        self.config = config
        self._on_retry = on_retry or (lambda error: None)
        self._on_overload = on_overload or (lambda overloaded: None)
        self._key: str | None = None

    async def __aenter__(self) -> TorchServeClient:
        limits = httpx.Limits(max_connections=self.config.max_connections,
                              max_keepalive_connections=self.config.max_connections)
        self._client = httpx.AsyncClient(base_url=self.config.url, limits=limits,
                                         timeout=self.config.timeout_s)
        # httpcore's pool rescans its waiting requests on every change, which costs a lot of
        # CPU with hundreds waiting; queue them here instead, one slot per connection.
        self._slots = asyncio.Semaphore(self.config.max_connections)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._client.aclose()

    def _headers(self, refresh: bool = False) -> dict[str, str]:
        if self._key is None or refresh:
            self._key = read_inference_key(Path(self.config.key_file))
        return {"Authorization": f"Bearer {self._key}"}

    async def _post_once(self, model: str, body: bytes) -> dict[str, Any]:
        async with self._slots:
            return await self._post_unqueued(model, body)

    async def _post_unqueued(self, model: str, body: bytes) -> dict[str, Any]:
        url = f"/predictions/{model}"
        try:
            response = await self._client.post(url, content=body, headers=self._headers())
            if _is_auth_refusal(response):
                logger.info("TorchServe refused the key: re-reading %s", self.config.key_file)
                response = await self._client.post(url, content=body,
                                                   headers=self._headers(refresh=True))
                if _is_auth_refusal(response):
                    raise AuthError("TorchServe refused the inference key from the key file")
        except httpx.TimeoutException as exc:
            raise ModelTimeout(f"{model}: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise ModelUnavailable(f"{model}: {type(exc).__name__}: {exc}") from exc
        if response.status_code in OVERLOADED or response.status_code >= 500:
            raise ModelUnavailable(f"{model}: HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code == 404:
            raise ModelUnavailable(f"{model}: not served (404)")
        if response.status_code == 413:  # over the archive's size or duration limit
            raise MediaTooLarge(f"{model}: {_error_text(response)}")
        if response.status_code >= 400:
            raise UndecodableMedia(f"{model}: HTTP {response.status_code}: {_error_text(response)}")
        try:
            return response.json()
        except ValueError as exc:
            raise ModelUnavailable(f"{model}: response is not JSON") from exc

    async def predict(self, model: str, body: bytes) -> dict[str, Any]:
        """Score one payload, retrying transient errors with exponential backoff and jitter.

        Raises :class:`UndecodableMedia` when the handler rejects the payload, the last
        :class:`TransientError` once the retry budget is spent, or :class:`AuthError`.
        """
        loop = asyncio.get_running_loop()
        # A time budget rather than a count: an outage of the model server is waited out
        # (intake pauses meanwhile) instead of dead-lettering every clip in flight.
        deadline = loop.time() + self.config.retry_budget_s
        delay = self.config.backoff_s
        while True:
            try:
                result = await self._post_once(model, body)
                self._on_overload(False)
                return result
            except TransientError as error:
                self._on_overload(True)
                if loop.time() + delay > deadline:
                    raise
                self._on_retry(error)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.config.backoff_max_s)
