"""TorchServe inference client: one shared aiohttp session, token auth, retries.

A payload goes alone (:meth:`TorchServeClient.predict`) or with others of the same batch in
one multipart request (:meth:`TorchServeClient.predict_batch`), each answered on its own.

Errors are translated here: the handler's per-request 4xx becomes :class:`UndecodableMedia`
(dead letter), connection failures, timeouts, 5xx and 503/507 become transient errors that
are retried with exponential backoff. A refused key (401, or TorchServe 0.12's
400 InvalidKeyException) makes the client re-read ``key_file.json`` once and try again.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from orchestrator.config import TorchServeConfig
from orchestrator.errors import (AuthError, MediaTooLarge, ModelTimeout, ModelUnavailable,
                                 TransientError, UndecodableMedia, VigilError)

logger = logging.getLogger(__name__)
OVERLOADED = (503, 507)
PART_OVERHEAD_BYTES = 256  # a multipart part's boundary and headers, generously
Payload = Callable[[], Any]  # a fresh request body per attempt: a sent FormData is spent


def read_inference_key(path: Path) -> str:
    """The inference key from TorchServe's key file; raises :class:`AuthError` if unreadable."""
    try:
        return json.loads(path.read_text())["inference"]["key"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AuthError(f"cannot read the inference key from {path}: {exc}") from exc


def _is_auth_refusal(status: int, content: bytes) -> bool:
    return status == 401 or (status == 400 and b"InvalidKeyException" in content)


def _refusal(model: str, status: int, text: str) -> UndecodableMedia | MediaTooLarge:
    """The dead-letter error for a payload the handler refused with a 4xx ``status``."""
    if status == 413:  # over the archive's duration limit, or the server's max_request_size
        return MediaTooLarge(f"{model}: {text or 'over the request size limit'}")
    return UndecodableMedia(f"{model}: HTTP {status}: {text}")


def _answer(model: str, answer: Any) -> dict[str, Any] | VigilError:
    """One part's answer in a multi-item response: its result, or its refusal as an error."""
    if not isinstance(answer, dict):
        return ModelUnavailable(f"{model}: unexpected answer {str(answer)[:200]}")
    if "error" in answer:
        return _refusal(model, int(answer.get("status") or 400), str(answer["error"])[:300])
    return answer


def _multipart(bodies: list[bytes]) -> aiohttp.FormData:
    """Parts named ``0``, ``1``, ... as binary uploads (a part without a filename would reach
    the handler as text), streamed from buffers so a large one does not block the loop."""
    form = aiohttp.FormData()
    for index, body in enumerate(bodies):
        form.add_field(str(index), io.BytesIO(body), filename=str(index),
                       content_type="application/octet-stream")
    return form


def pack(bodies: list[bytes], limit: int) -> list[list[bytes]]:
    """Consecutive groups of ``bodies`` whose requests stay under ``limit`` bytes; a body over
    the limit goes alone, so only its own request is refused."""
    groups: list[list[bytes]] = []
    size = 0
    for body in bodies:
        cost = len(body) + PART_OVERHEAD_BYTES
        if not groups or size + cost > limit:
            groups.append([])
            size = 0
        groups[-1].append(body)
        size += cost
    return groups


def _error_text(content: bytes) -> str:
    """The handler's ``error`` field when the body is its JSON, else the body's start."""
    try:
        return str(json.loads(content).get("error"))[:300]
    except (ValueError, AttributeError):
        return content[:300].decode(errors="replace")


class TorchServeClient:
    """Posts payloads to ``/predictions/<model>`` and returns the decoded JSON."""

    def __init__(self, config: TorchServeConfig, *,
                 on_retry: Callable[[TransientError], None] | None = None,
                 on_overload: Callable[[bool], None] | None = None) -> None:
        self.config = config
        self._on_retry = on_retry or (lambda error: None)
        self._on_overload = on_overload or (lambda overloaded: None)
        self._key: str | None = None

    async def __aenter__(self) -> TorchServeClient:
        # aiohttp rather than httpx: measured with a trivial model, httpx's connection pool
        # took over half of the daemon's CPU per request (docs/BENCHMARKS.md).
        self._session = aiohttp.ClientSession(
            base_url=self.config.url,
            connector=aiohttp.TCPConnector(limit=self.config.max_connections),
            timeout=aiohttp.ClientTimeout(total=self.config.timeout_s))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._session.close()

    def _headers(self, refresh: bool = False) -> dict[str, str]:
        if self._key is None or refresh:
            self._key = read_inference_key(Path(self.config.key_file))
        return {"Authorization": f"Bearer {self._key}"}

    async def _post(self, url: str, payload: Payload, *,
                    refresh: bool = False) -> tuple[int, bytes]:
        async with self._session.post(url, data=payload(),
                                      headers=self._headers(refresh)) as response:
            return response.status, await response.read()

    async def _post_once(self, model: str, payload: Payload) -> Any:
        url = f"/predictions/{model}"
        try:
            status, content = await self._post(url, payload)
            if _is_auth_refusal(status, content):
                logger.info("TorchServe refused the key: re-reading %s", self.config.key_file)
                status, content = await self._post(url, payload, refresh=True)
                if _is_auth_refusal(status, content):
                    raise AuthError("TorchServe refused the inference key from the key file")
        except asyncio.TimeoutError as exc:
            raise ModelTimeout(f"{model}: timed out after {self.config.timeout_s} s") from exc
        except aiohttp.ClientError as exc:
            raise ModelUnavailable(f"{model}: {type(exc).__name__}: {exc}") from exc
        if status in OVERLOADED or status >= 500:
            raise ModelUnavailable(
                f"{model}: HTTP {status}: {content[:200].decode(errors='replace')}")
        if status == 404:
            raise ModelUnavailable(f"{model}: not served (404)")
        if status >= 400:
            raise _refusal(model, status, _error_text(content))
        try:
            return json.loads(content)
        except ValueError as exc:
            raise ModelUnavailable(f"{model}: response is not JSON") from exc

    async def predict(self, model: str, body: bytes) -> dict[str, Any]:
        """Score one payload, retrying transient errors with exponential backoff and jitter.

        Raises :class:`UndecodableMedia` when the handler rejects the payload, the last
        :class:`TransientError` once the retry budget is spent, or :class:`AuthError`.
        """
        return await self._with_retries(model, lambda: body)

    async def predict_batch(self, model: str,
                            bodies: list[bytes]) -> list[dict[str, Any] | VigilError]:
        """Score several payloads in one multipart request (more where they would pass
        ``max_request_bytes``): per payload, its result or the error it was refused with.

        Raises like :meth:`predict` when a whole request fails.
        """
        groups = pack(bodies, self.config.max_request_bytes)
        answers = await asyncio.gather(*(self._predict_group(model, group) for group in groups))
        return [result for answer in answers for result in answer]

    async def _predict_group(self, model: str,
                             bodies: list[bytes]) -> list[dict[str, Any] | VigilError]:
        try:
            answer = await self._with_retries(model, lambda: _multipart(bodies))
        except (UndecodableMedia, MediaTooLarge) as refusal:  # the request as a whole
            return [refusal] * len(bodies)
        if not isinstance(answer, list) or len(answer) != len(bodies):
            raise ModelUnavailable(
                f"{model}: {len(bodies)} payloads sent, answer was {str(answer)[:200]}")
        return [_answer(model, part) for part in answer]

    async def _with_retries(self, model: str, payload: Payload) -> Any:
        """Post ``payload()`` (fresh for every attempt) with exponential backoff and jitter."""
        loop = asyncio.get_running_loop()
        # A time budget rather than a count: an outage of the model server is waited out
        # (intake pauses meanwhile) instead of dead-lettering every clip in flight.
        deadline = loop.time() + self.config.retry_budget_s
        delay = self.config.backoff_s
        while True:
            try:
                result = await self._post_once(model, payload)
                self._on_overload(False)
                return result
            except TransientError as error:
                self._on_overload(True)
                if loop.time() + delay > deadline:
                    raise
                self._on_retry(error)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.config.backoff_max_s)
