"""Media for a message: inline base64, or a URL fetched under an allow-list with limits.

Only configured schemes and hosts (``host`` or ``host:port``) are fetched, ``file://`` only
under configured directories. A URL is parsed once, by the parser the HTTP client uses
(yarl), and that parsed URL is both checked and fetched, so the check and the fetch cannot
read one text two ways; a URL with whitespace, control characters or a backslash, or one
the client refuses, is :class:`MediaNotAllowed`, never an outage to retry. A host allowed by
name must also resolve to public addresses: a name that resolves to a loopback, private,
link-local, shared or cloud-metadata address is refused unless ``media.allowed_networks``
names that range, which closes DNS rebinding; an IPv6 address that embeds an IPv4 one
(IPv4-mapped or -translated, NAT64, 6to4, Teredo) is judged by the IPv4 address too. The
check runs inside the connection's resolver, so the connection goes to an address that was
checked and to no other. Redirects are followed by hand, each hop checked again; bodies are
streamed and cut off at ``max_bytes``; transient failures are retried within
``media.retry_budget_s``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from orchestrator.config import MediaConfig
from orchestrator.errors import (
    ConfigError,
    InvalidField,
    MediaFetchFailed,
    MediaNotAllowed,
    MediaTooLarge,
    MediaUnavailable,
)
from orchestrator.flow import RetryPolicy

MAX_REDIRECTS = 3
MAX_URL_CHARS = 8192
SystemResolver = aiohttp.ThreadedResolver  # getaddrinfo in a thread
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# IPv6 ranges whose last 32 bits are an IPv4 address: NAT64's well-known prefix,
# IPv4-translated (RFC 2765) and the deprecated IPv4-compatible addresses.
IPV4_IN_LAST_32_BITS = tuple(ipaddress.ip_network(n) for n in (
    "64:ff9b::/96", "::ffff:0:0:0/96", "::/96"))
# Local-use NAT64 (RFC 8215): where the IPv4 address sits depends on the operator's prefix.
NEVER_PUBLIC = (ipaddress.ip_network("64:ff9b:1::/48"),)


def parse_networks(entries: tuple[str, ...]) -> list[Network]:
    """``media.allowed_networks`` as networks; raises :class:`ConfigError` for a bad one."""
    try:
        return [ipaddress.ip_network(entry, strict=False) for entry in entries]
    except ValueError as exc:
        raise ConfigError(f"media.allowed_networks: {exc}") from exc


def parse_hosts(entries: tuple[str, ...]) -> set[tuple[str, int | None]]:
    """``media.allowed_hosts`` entries (``host`` or ``host:port``) as (host, port or None),
    the host as the client sends it (lower case, IDNA-encoded)."""
    hosts = set()
    for entry in entries:
        try:
            parsed = URL(f"//{entry}")
        except ValueError as exc:
            raise ConfigError(f"media.allowed_hosts: {entry!r}: {exc}") from exc
        hosts.add(((parsed.raw_host or "").lower(), parsed.explicit_port))
    return hosts


def parse_url(url: str) -> URL:
    """``url`` parsed the way the HTTP client will read it; raises :class:`MediaNotAllowed`
    for one it would refuse or read otherwise than its text shows."""
    if len(url) > MAX_URL_CHARS:
        raise MediaNotAllowed(f"URL of {len(url)} characters, over {MAX_URL_CHARS}")
    if "\\" in url or " " in url or not url.isprintable():
        raise MediaNotAllowed(f"malformed URL (whitespace, control character or backslash): "
                              f"{url[:200]!r}")
    try:
        return URL(url)
    except (ValueError, TypeError) as exc:
        raise MediaNotAllowed(f"not a valid URL: {url[:200]!r}: {exc}") from exc


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, translated, NAT64, 6to4, Teredo)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address (the server is Teredo's own)
    if any(address in network for network in IPV4_IN_LAST_32_BITS):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_allowed(address: Address, networks: list[Network]) -> bool:
    """Public addresses are allowed; others only inside an explicitly allowed network. An
    IPv6 address that carries an IPv4 one must be public and carry an allowed one."""
    if any(address in network for network in networks):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in NEVER_PUBLIC):
            return False
        carried = embedded_ipv4(address)
        if carried is not None:
            return (address_allowed(carried, networks)
                    and (address.ipv4_mapped is not None or address.is_global))
    return address.is_global and not address.is_multicast


class CheckedResolver(AbstractResolver):
    """Resolves like the system, then drops every address outside the allowed ranges; a
    name left with none is refused as :class:`MediaNotAllowed`."""

    def __init__(self, networks: list[Network]) -> None:
        self._system = SystemResolver()
        self._networks = networks

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        resolved = await self._system.resolve(host, port, family)
        allowed = [entry for entry in resolved
                   if address_allowed(ipaddress.ip_address(entry["host"]), self._networks)]
        if not allowed:
            addresses = sorted({entry["host"] for entry in resolved})
            raise MediaNotAllowed(f"host {host!r} resolves to {addresses}, outside the "
                                  "allowed networks")
        return allowed

    async def close(self) -> None:
        await self._system.close()


class MediaFetcher:
    """Resolves a message's media to bytes. Use as an async context manager."""

    def __init__(self, config: MediaConfig, *,
                 on_retry: Callable[[BaseException], None] | None = None) -> None:
        self.config = config
        self._dirs = [Path(d).resolve() for d in config.allowed_dirs]
        self._hosts = parse_hosts(config.allowed_hosts)
        self._networks = parse_networks(config.allowed_networks)
        self.retry = RetryPolicy(config.retry, on_retry=on_retry)

    async def __aenter__(self) -> MediaFetcher:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=CheckedResolver(self._networks)),
            timeout=aiohttp.ClientTimeout(total=self.config.timeout_s), trust_env=False)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._session.close()

    def decode_inline(self, encoded: str) -> bytes:
        """Base64 media; raises :class:`InvalidField` or :class:`MediaTooLarge`."""
        if len(encoded) * 3 // 4 > self.config.max_bytes:
            raise MediaTooLarge(f"inline media over {self.config.max_bytes} bytes")
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidField(f"inline media is not valid base64: {exc}") from exc

    def check_allowed(self, url: str | URL) -> URL:
        """``url`` parsed (see :func:`parse_url`); raises :class:`MediaNotAllowed` unless its
        scheme, host and port are allowed (and, for an address written in the URL, its
        range), or for a file URL, unless it lies under an allowed directory."""
        parsed = url if isinstance(url, URL) else parse_url(url)
        shown = str(parsed)[:200]
        scheme = parsed.scheme.lower()
        if scheme not in self.config.allowed_schemes:
            raise MediaNotAllowed(f"scheme {scheme!r} is not allowed: {shown}")
        if scheme == "file":
            path = Path(parsed.path).resolve()
            if parsed.raw_host or not any(path.is_relative_to(d) for d in self._dirs):
                raise MediaNotAllowed(f"file outside the allowed directories: {shown}")
            return parsed
        if not parsed.raw_host or not parsed.port:
            raise MediaNotAllowed(f"no host or port in {shown}")
        host = parsed.raw_host.lower()
        if (host, None) not in self._hosts and (host, parsed.port) not in self._hosts:
            raise MediaNotAllowed(f"host {host!r} port {parsed.port} is not allowed")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            return parsed  # a name: its addresses are checked when it is resolved
        if not address_allowed(literal, self._networks):
            raise MediaNotAllowed(f"address {host} is outside the allowed networks")
        return parsed

    async def fetch(self, url: str) -> bytes:
        """The bytes at ``url``; raises a :class:`BadMessage`, or after retries
        :class:`MediaFetchFailed`."""
        parsed = self.check_allowed(url)
        if parsed.scheme.lower() == "file":
            return await asyncio.to_thread(self._read_file, Path(parsed.path))
        return await self.retry.call(self._fetch_http, parsed)

    def _read_file(self, path: Path) -> bytes:
        limit = self.config.max_bytes
        try:
            # A FIFO or a device would block the open or the read, or never end: regular
            # files only, checked on what was opened (non-blocking: a FIFO opens at once).
            with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as media:
                status = os.fstat(media.fileno())
                if not stat.S_ISREG(status.st_mode):
                    raise MediaUnavailable(f"not a regular file: {path}")
                if status.st_size > limit:
                    raise MediaTooLarge(f"{path} is {status.st_size} bytes, over {limit}")
                body = media.read(limit + 1)  # a file that grew since: still bounded
        except FileNotFoundError as exc:
            raise MediaUnavailable(f"no such file: {path}") from exc
        except IsADirectoryError as exc:
            raise MediaUnavailable(f"not a file: {path}") from exc
        if len(body) > limit:
            raise MediaTooLarge(f"{path} is over {limit} bytes")
        return body

    async def _fetch_http(self, url: URL) -> bytes:
        for _ in range(MAX_REDIRECTS + 1):
            shown = str(url)[:200]
            try:
                async with self._session.get(url, allow_redirects=False) as response:
                    if response.status in (301, 302, 303, 307, 308):
                        url = self.check_allowed(
                            url.join(parse_url(response.headers.get("Location", ""))))
                        continue
                    if response.status >= 500:
                        raise MediaFetchFailed(f"HTTP {response.status} for {shown}")
                    if response.status >= 400:
                        raise MediaUnavailable(f"HTTP {response.status} for {shown}")
                    return await self._read_body(response)
            except asyncio.TimeoutError as exc:
                raise MediaFetchFailed(f"{shown}: timed out after "
                                       f"{self.config.timeout_s} s") from exc
            except aiohttp.InvalidURL as exc:  # the client's own refusal is no outage
                raise MediaNotAllowed(f"{shown}: the HTTP client refuses it: {exc}") from exc
            except aiohttp.ClientError as exc:
                raise MediaFetchFailed(f"{shown}: {type(exc).__name__}: {exc}") from exc
        raise MediaNotAllowed(f"more than {MAX_REDIRECTS} redirects")

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self.config.max_bytes
        if (response.content_length or 0) > limit:
            raise MediaTooLarge(f"{response.content_length} bytes declared, over {limit}")
        chunks, size = [], 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise MediaTooLarge(f"body over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
