"""The media fetcher against a real HTTP server on 127.0.0.1."""

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.config import MediaConfig
from orchestrator.errors import (InvalidField, MediaNotAllowed, MediaTooLarge,
                                 MediaUnavailable)
from orchestrator.media import MediaFetcher

BODY = b"x" * 1000


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        routes = {
            "/clip.wav": (200, {}, BODY),
            "/big.wav": (200, {}, b"y" * 5000),
            "/missing.wav": (404, {}, b""),
            "/hop": (302, {"Location": "/clip.wav"}, b""),
            "/escape": (302, {"Location": "http://evil.invalid/clip.wav"}, b""),
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


@pytest.fixture
async def fetcher(tmp_path):
    config = MediaConfig(allowed_schemes=("http", "file"), allowed_hosts=("127.0.0.1",),
                         allowed_dirs=(str(tmp_path),), max_bytes=2000, timeout_s=5)
    async with MediaFetcher(config) as media:
        yield media


async def test_allowed_url_and_redirect_inside_the_allow_list(fetcher, server):
    assert await fetcher.fetch(f"{server}/clip.wav") == BODY
    assert await fetcher.fetch(f"{server}/hop") == BODY


@pytest.mark.parametrize("path, error", [
    ("/escape", MediaNotAllowed),
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


def test_inline_media(fetcher):
    assert fetcher.decode_inline(base64.b64encode(BODY).decode()) == BODY
    with pytest.raises(InvalidField):
        fetcher.decode_inline("not base64!")
    with pytest.raises(MediaTooLarge):
        fetcher.decode_inline(base64.b64encode(b"q" * 4000).decode())
