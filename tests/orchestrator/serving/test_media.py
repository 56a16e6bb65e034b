"""The media fetcher against a real HTTP server on 127.0.0.1: limits, the allow-list, and
addresses a name may resolve to (SSRF, DNS rebinding)."""

import asyncio
import base64
import ipaddress
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.config import MediaConfig
from orchestrator.errors import InvalidField, MediaNotAllowed, MediaTooLarge, MediaUnavailable
from orchestrator.serving import MediaFetcher
from orchestrator.serving import media as media_module

BODY = b"x" * 1000


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        routes = {
            "/clip.wav": (200, {}, BODY),
            "/big.wav": (200, {}, b"y" * 5000),
            "/missing.wav": (404, {}, b""),
            "/hop": (302, {"Location": "/clip.wav"}, b""),
            "/escape": (302, {"Location": "http://evil.invalid/clip.wav"}, b""),
            "/to-ftp": (302, {"Location": "ftp://127.0.0.1/clip.wav"}, b""),
            "/to-bad": (302, {"Location": "http://evil\\@127.0.0.1/clip.wav"}, b""),
        }
        status, headers, body = routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def config(tmp_path, **changes) -> MediaConfig:
    settings = {"allowed_schemes": ("http", "file"), "allowed_hosts": ("127.0.0.1",),
                "allowed_networks": ("127.0.0.0/8",), "allowed_dirs": (str(tmp_path),),
                "max_bytes": 2000, "timeout_s": 5, "retry_budget_s": 0.5}
    return MediaConfig(**{**settings, **changes})


@pytest.fixture
async def fetcher(tmp_path):
    async with MediaFetcher(config(tmp_path)) as media:
        yield media


class FakeDns:
    """Stands in for the system resolver: every name resolves to ``addresses``."""

    addresses: list[str] = []

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": address, "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": 0} for address in self.addresses]

    async def close(self):
        pass


@pytest.fixture
def dns(monkeypatch):
    monkeypatch.setattr(media_module, "SystemResolver", FakeDns)
    return FakeDns


async def test_allowed_url_and_redirect_inside_the_allow_list(fetcher, server):
    assert await fetcher.fetch(f"{server}/clip.wav") == BODY
    assert await fetcher.fetch(f"{server}/hop") == BODY


@pytest.mark.parametrize("path, error", [
    ("/escape", MediaNotAllowed),
    ("/to-ftp", MediaNotAllowed),  # a redirect to a refused scheme is no outage either
    ("/to-bad", MediaNotAllowed),
    ("/big.wav", MediaTooLarge),
    ("/missing.wav", MediaUnavailable),
])
async def test_refused_fetches(fetcher, server, path, error):
    with pytest.raises(error):
        await fetcher.fetch(f"{server}{path}")


async def test_hosts_schemes_and_directories_outside_the_allow_list(fetcher, tmp_path):
    for url in ("http://localhost/clip.wav", "ftp://127.0.0.1/clip.wav", "file:///etc/hostname",
                f"file://{tmp_path}/../escape.wav"):
        with pytest.raises(MediaNotAllowed):
            await fetcher.fetch(url)


async def test_files_inside_the_allowed_directory(fetcher, tmp_path):
    (tmp_path / "a.wav").write_bytes(BODY)
    (tmp_path / "b.wav").write_bytes(b"z" * 3000)
    assert await fetcher.fetch((tmp_path / "a.wav").as_uri()) == BODY
    with pytest.raises(MediaTooLarge):
        await fetcher.fetch((tmp_path / "b.wav").as_uri())
    with pytest.raises(MediaUnavailable):
        await fetcher.fetch((tmp_path / "c.wav").as_uri())


async def test_only_regular_files_are_read(fetcher, tmp_path):
    os.mkfifo(tmp_path / "fifo.wav")  # would block the read for ever
    with pytest.raises(MediaUnavailable, match="not a regular file"):
        await asyncio.wait_for(fetcher.fetch((tmp_path / "fifo.wav").as_uri()), 5)
    (tmp_path / "zero.wav").symlink_to("/dev/zero")  # resolves outside the directory
    with pytest.raises(MediaNotAllowed):
        await fetcher.fetch((tmp_path / "zero.wav").as_uri())


def test_inline_media(fetcher):
    assert fetcher.decode_inline(base64.b64encode(BODY).decode()) == BODY
    with pytest.raises(InvalidField):
        fetcher.decode_inline("not base64!")
    with pytest.raises(MediaTooLarge):
        fetcher.decode_inline(base64.b64encode(b"q" * 4000).decode())


def port_of(server: str) -> int:
    return int(server.rsplit(":", 1)[1])


async def test_a_name_that_resolves_to_a_private_address_is_refused(tmp_path, server):
    settings = config(tmp_path, allowed_hosts=("localhost",), allowed_networks=())
    async with MediaFetcher(settings) as media:
        with pytest.raises(MediaNotAllowed, match="resolves to"):
            await media.fetch(f"http://localhost:{port_of(server)}/clip.wav")
    # The same host is fine once its network is allowed on purpose.
    async with MediaFetcher(config(tmp_path, allowed_hosts=("localhost",))) as media:
        assert await media.fetch(f"http://localhost:{port_of(server)}/clip.wav") == BODY


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",  # the cloud metadata service
    "http://10.0.0.7/clip.wav", "http://192.168.1.1/clip.wav", "http://[::1]/clip.wav",
    "http://[::ffff:127.0.0.1]/clip.wav", "http://100.100.100.200/clip.wav",
])
async def test_addresses_in_the_url_are_checked_even_when_the_host_is_listed(tmp_path, url):
    host = url.split("/")[2]
    async with MediaFetcher(config(tmp_path, allowed_hosts=(host,),
                                   allowed_networks=())) as media:
        with pytest.raises(MediaNotAllowed):
            await media.fetch(url)


@pytest.mark.parametrize("url", [
    "http://evil\\@127.0.0.1/clip.wav",  # urlsplit and the client once read two hosts here
    "http://127.0.0.1/clip.wav\nCRITICAL forged log line",
    "http://127.0.0.1/clip .wav", "http://127.0.0.1:99999/clip.wav", "http://127.0.0.1:0/x",
    "http://[::1/clip.wav", "http:///clip.wav", "http://127.0.0.1/" + "a" * 9000,
])
async def test_a_malformed_url_is_refused_at_once_not_retried_as_an_outage(fetcher, url):
    with pytest.raises(MediaNotAllowed):
        await fetcher.fetch(url)


@pytest.mark.parametrize("address", [
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::7f00:1", "64:ff9b:1::a00:7",  # NAT64 of 127.0.0.1; local-use NAT64
    "2002:a9fe:a9fe::1",  # 6to4 of the metadata service
    "::ffff:0:a00:7",  # IPv4-translated 10.0.0.7
    "::a9fe:a9fe",  # IPv4-compatible
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
])
def test_ipv6_addresses_that_carry_a_private_ipv4_one_are_not_public(address):
    assert not media_module.address_allowed(ipaddress.ip_address(address), [])


def test_ipv6_addresses_that_carry_a_public_ipv4_one_are_judged_by_it():
    assert media_module.address_allowed(ipaddress.ip_address("2002:808:808::1"), [])
    assert media_module.address_allowed(ipaddress.ip_address("64:ff9b::808:808"), [])
    assert media_module.address_allowed(ipaddress.ip_address("2606:4700::1111"), [])
    assert media_module.address_allowed(ipaddress.ip_address("64:ff9b::a00:7"),
                                        [ipaddress.ip_network("10.0.0.0/8")])


async def test_a_listed_port_admits_only_that_port(tmp_path, server):
    port = port_of(server)
    async with MediaFetcher(config(tmp_path, allowed_hosts=(f"127.0.0.1:{port}",))) as media:
        assert await media.fetch(f"{server}/clip.wav") == BODY
        with pytest.raises(MediaNotAllowed, match="port"):
            await media.fetch(f"http://127.0.0.1:{port + 1}/clip.wav")


async def test_the_connection_goes_to_the_checked_address_and_no_other(tmp_path, server, dns):
    """DNS rebinding: the name resolves once, in the connection's own resolver, and only the
    addresses that passed the check are dialled ("media.test" exists in no real DNS)."""
    port = port_of(server)
    settings = config(tmp_path, allowed_hosts=("media.test",))
    dns.addresses = ["10.9.8.7", "127.0.0.1"]  # one private, one explicitly allowed
    async with MediaFetcher(settings) as media:
        assert await media.fetch(f"http://media.test:{port}/clip.wav") == BODY
    dns.addresses = ["10.9.8.7", "169.254.169.254"]
    async with MediaFetcher(settings) as media:
        with pytest.raises(MediaNotAllowed, match="outside the allowed networks"):
            await media.fetch(f"http://media.test:{port}/clip.wav")


async def test_a_redirect_to_a_listed_name_that_resolves_privately_is_refused(tmp_path, server,
                                                                             dns):
    dns.addresses = ["10.0.0.1"]  # /escape redirects to evil.invalid, listed by name
    settings = config(tmp_path, allowed_hosts=("127.0.0.1", "evil.invalid"))
    async with MediaFetcher(settings) as media:
        with pytest.raises(MediaNotAllowed, match="evil.invalid"):
            await media.fetch(f"{server}/escape")
