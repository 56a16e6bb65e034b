"""TorchServe inference client: one shared aiohttp session, token auth, retries.

A payload goes alone (:meth:`TorchServeClient.predict`) or with others of the same batch in
one multipart request (:meth:`TorchServeClient.predict_batch`), each answered on its own.
Every request names the model's version (``/predictions/<name>/<version>``), so what scores
a clip is what the catalogue says, whichever version TorchServe holds as its default.

Errors are translated here: the handler's per-request 4xx becomes :class:`UndecodableMedia`
or :class:`MediaTooLarge` (dead letters); a refused or lost connection, a timeout and
503/507 (no worker free, or out of memory) are transient and retried by the
:class:`~orchestrator.flow.retry.RetryPolicy`; 500 (the handler failed, or the worker died with
the request) is retried too, since TorchServe restarts the worker; a refused key (401, or
TorchServe 0.12's 400 InvalidKeyException) makes the client re-read ``key_file.json`` once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ContextManager

import aiohttp
from prometheus_client import Histogram

from orchestrator.catalogue import ModelEntry
from orchestrator.config import TorchServeConfig
from orchestrator.errors import (
    AuthError,
    ConfigError,
    MediaTooLarge,
    ModelTimeout,
    ModelUnavailable,
    UndecodableMedia,
    VigilError,
)
from orchestrator.flow import Health, RetryPolicy
from orchestrator.metrics import labelled

logger = logging.getLogger(__name__)
PART_OVERHEAD_BYTES = 256  # a multipart part's boundary and headers, generously
READY_POLL_S = 1.0
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
    if status == 413:  # over a size, pixel, duration or decode-time limit of the archive
        return MediaTooLarge(f"{model}: {text or 'over the request size limit'}")
    return UndecodableMedia(f"{model}: HTTP {status}: {text}")


def _answer(model: str, answer: Any) -> dict[str, Any] | VigilError:
    """One part's answer in a multi-item response: its result, or its refusal as an error."""
    if not isinstance(answer, dict):
        return ModelUnavailable(f"{model}: unexpected answer {str(answer)[:200]}")
    if "error" in answer:
        status = answer.get("status")
        status = status if isinstance(status, int) and 400 <= status < 500 else 400
        return _refusal(model, status, str(answer["error"])[:300])
    return answer


def _multipart(bodies: Sequence[bytes]) -> aiohttp.FormData:
    """Parts named ``0``, ``1``, ... as binary uploads (a part without a filename would reach
    the handler as text), streamed from buffers so a large one does not block the loop."""
    form = aiohttp.FormData()
    for index, body in enumerate(bodies):
        form.add_field(str(index), io.BytesIO(body), filename=str(index),
                       content_type="application/octet-stream")
    return form


def pack(bodies: Sequence[bytes], limit: int) -> list[list[bytes]]:
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
    """Posts payloads to a model version and returns the decoded JSON."""

    def __init__(self, config: TorchServeConfig, *,
                 on_retry: Callable[[BaseException], None] | None = None,
                 health: Health | None = None, inference: Histogram | None = None,
                 max_attempts: int | None = None) -> None:
        """``max_attempts`` caps the tries of each request (1: no retry) within
        ``config.retry``'s budget."""
        self.config = config
        retry = dataclasses.replace(config.retry, max_attempts=max_attempts)
        self.retry = RetryPolicy(retry, on_retry=on_retry, health=health)
        self._inference = labelled(inference) if inference is not None else None
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

    async def _send(self, method: str, url: str, payload: Payload | None, *,
                    refresh: bool = False) -> tuple[int, bytes]:
        data = payload() if payload is not None else None
        async with self._session.request(method, url, data=data,
                                         headers=self._headers(refresh)) as response:
            return response.status, await response.read()

    async def _request(self, method: str, url: str, payload: Payload | None,
                       what: str) -> tuple[int, bytes]:
        """One attempt, the key re-read once if refused; transport errors translated."""
        try:
            status, content = await self._send(method, url, payload)
            if _is_auth_refusal(status, content):
                logger.info("TorchServe refused the key: re-reading %s", self.config.key_file)
                status, content = await self._send(method, url, payload, refresh=True)
                if _is_auth_refusal(status, content):
                    raise AuthError("TorchServe refused the inference key from the key file")
        except asyncio.TimeoutError as exc:
            raise ModelTimeout(f"{what}: timed out after {self.config.timeout_s} s") from exc
        except aiohttp.ClientError as exc:
            raise ModelUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
        return status, content

    async def _post_once(self, model: ModelEntry, payload: Payload) -> Any:
        what = f"{model.name} {model.version}"
        status, content = await self._request("POST", model.path, payload, what)
        if status >= 500:
            raise ModelUnavailable(
                f"{what}: HTTP {status}: {content[:200].decode(errors='replace')}")
        if status == 404:
            raise ModelUnavailable(f"{what}: not served (404)")
        if status >= 400:
            raise _refusal(what, status, _error_text(content))
        try:
            return json.loads(content)
        except ValueError as exc:
            raise ModelUnavailable(f"{what}: the answer is not JSON") from exc

    async def predict(self, model: ModelEntry, body: bytes) -> Any:
        """Score one payload with ``model``'s version.

        Raises :class:`UndecodableMedia` or :class:`MediaTooLarge` when the handler refuses
        the payload, the last transient error once the retry budget is spent, or
        :class:`AuthError`.
        """
        with self._timed(model):
            return await self.retry.call(self._post_once, model, lambda: body)

    def _timed(self, model: ModelEntry) -> ContextManager[object]:
        """Time into ``vigil_inference_seconds{model}``, retries included."""
        if self._inference is None:
            return contextlib.nullcontext()
        return self._inference(model.name).time()

    async def predict_batch(self, model: ModelEntry,
                            bodies: Sequence[bytes]) -> list[Any | VigilError]:
        """Score several payloads in one multipart request (more where they would pass
        ``max_request_bytes``): per payload, its answer or the error it was refused with.

        Raises like :meth:`predict` when a whole request fails.
        """
        groups = pack(bodies, self.config.max_request_bytes)
        with self._timed(model):
            answers = await asyncio.gather(*(self._predict_group(model, group)
                                             for group in groups))
        return [result for answer in answers for result in answer]

    async def _predict_group(self, model: ModelEntry,
                             bodies: list[bytes]) -> list[Any | VigilError]:
        try:
            answer = await self.retry.call(self._post_once, model, lambda: _multipart(bodies))
        except (UndecodableMedia, MediaTooLarge) as refusal:  # the request as a whole
            return [refusal] * len(bodies)
        if not isinstance(answer, list) or len(answer) != len(bodies):
            raise ModelUnavailable(
                f"{model.name}: {len(bodies)} payloads sent, answer was {str(answer)[:200]}")
        return [_answer(model.name, part) for part in answer]

    async def check_served(self, models: Sequence[ModelEntry]) -> None:
        """Block until TorchServe reports every model healthy, then check it serves each of
        ``models`` at its version. Raises :class:`ConfigError` for a model it does not serve,
        or when it is not healthy within ``startup_timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.startup_timeout_s
        while True:
            try:
                status, content = await self._request("GET", "/ping", None, "TorchServe")
                if status == 200 and b"Healthy" in content and b"Unhealthy" not in content:
                    break
                problem = f"ping answered {status} {content[:100]!r}"
            except (ModelUnavailable, ModelTimeout) as exc:
                problem = str(exc)
            if loop.time() > deadline:
                raise ConfigError(f"TorchServe at {self.config.url} not healthy after "
                                  f"{self.config.startup_timeout_s:.0f} s: {problem}")
            logger.info("waiting for TorchServe: %s", problem)
            await asyncio.sleep(READY_POLL_S)
        served = await asyncio.gather(*(self.serves(model) for model in models))
        missing = [f"{m.name} {m.version}" for m, ok in zip(models, served) if not ok]
        if missing:
            raise ConfigError(f"TorchServe at {self.config.url} does not serve {missing}, "
                              "which the catalogue routes to: load those archives or route "
                              "elsewhere")

    async def serves(self, model: ModelEntry) -> bool:
        """Whether TorchServe serves ``model`` at its version. An empty body costs a worker
        one refusal; a model or version that is not registered answers 404 before any
        worker sees it. Raises like :meth:`predict` when TorchServe cannot be reached."""
        status, _ = await self._request("POST", model.path, lambda: b"", model.name)
        return status != 404
