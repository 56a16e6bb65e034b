"""Media for a message: inline base64, or a URL fetched under an allow-list with limits.

Only configured schemes and hosts are fetched (``file://`` only under configured
directories); redirects are followed by hand so each hop is checked against the allow-list;
bodies are streamed and cut off at ``max_bytes``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from pathlib import Path
from urllib.parse import urljoin, urlparse

import httpx

from orchestrator.config import MediaConfig
from orchestrator.errors import (InvalidField, MediaFetchFailed, MediaNotAllowed, MediaTooLarge,
                                 MediaUnavailable)

MAX_REDIRECTS = 3
FETCH_ATTEMPTS = 3


class MediaFetcher:
    """Resolves a message's media to bytes. Use as an async context manager."""

    def __init__(self, config: MediaConfig) -> None:
        self.config = config
        self._dirs = [Path(d).resolve() for d in config.allowed_dirs]

    async def __aenter__(self) -> MediaFetcher:
        self._client = httpx.AsyncClient(follow_redirects=False, timeout=self.config.timeout_s)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._client.aclose()

    def decode_inline(self, encoded: str) -> bytes:
        """Base64 media; raises :class:`InvalidField` or :class:`MediaTooLarge`."""
        if len(encoded) * 3 // 4 > self.config.max_bytes:
            raise MediaTooLarge(f"inline media over {self.config.max_bytes} bytes")
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidField(f"audio_b64 is not valid base64: {exc}") from exc

    def check_allowed(self, url: str) -> None:
        """Raise :class:`MediaNotAllowed` unless the URL's scheme and host are allowed."""
        parsed = urlparse(url)
        if parsed.scheme not in self.config.allowed_schemes:
            raise MediaNotAllowed(f"scheme {parsed.scheme!r} is not allowed: {url[:200]}")
        if parsed.scheme == "file":
            path = Path(parsed.path).resolve()
            if not any(path.is_relative_to(d) for d in self._dirs):
                raise MediaNotAllowed(f"file outside the allowed directories: {parsed.path}")
        elif parsed.hostname not in self.config.allowed_hosts:
            raise MediaNotAllowed(f"host {parsed.hostname!r} is not allowed")

    async def fetch(self, url: str) -> bytes:
        """The bytes at ``url``; raises a :class:`BadMessage` or, after retries, a transient error."""
        self.check_allowed(url)
        if urlparse(url).scheme == "file":
            return await asyncio.to_thread(self._read_file, Path(urlparse(url).path))
        for attempt in range(1, FETCH_ATTEMPTS + 1):
            try:
                return await asyncio.wait_for(self._fetch_http(url), self.config.timeout_s)
            except (MediaFetchFailed, asyncio.TimeoutError) as exc:
                if attempt == FETCH_ATTEMPTS:
                    raise MediaFetchFailed(f"{url[:200]}: {exc or 'timed out'}") from exc
                await asyncio.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    def _read_file(self, path: Path) -> bytes:
        try:
            size = path.stat().st_size
            if size > self.config.max_bytes:
                raise MediaTooLarge(f"{path} is {size} bytes, over {self.config.max_bytes}")
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise MediaUnavailable(f"no such file: {path}") from exc
        except IsADirectoryError as exc:
            raise MediaUnavailable(f"not a file: {path}") from exc

    async def _fetch_http(self, url: str) -> bytes:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with self._client.stream("GET", url) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        self.check_allowed(url)
                        continue
                    if response.status_code >= 500:
                        raise MediaFetchFailed(f"HTTP {response.status_code}")
                    if response.status_code >= 400:
                        raise MediaUnavailable(f"HTTP {response.status_code} for {url[:200]}")
                    declared = int(response.headers.get("content-length") or 0)
                    if declared > self.config.max_bytes:
                        raise MediaTooLarge(f"{declared} bytes declared, over {self.config.max_bytes}")
                    chunks, size = [], 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > self.config.max_bytes:
                            raise MediaTooLarge(f"body over {self.config.max_bytes} bytes")
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.TransportError as exc:
                raise MediaFetchFailed(f"{type(exc).__name__}: {exc}") from exc
        raise MediaNotAllowed(f"more than {MAX_REDIRECTS} redirects")
