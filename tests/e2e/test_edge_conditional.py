"""A conditional read answered by the edge (a real varnishd on deploy/varnish's VCL, a stub API behind it): the 304
carries no Content-Encoding, since it has no body to decode.

The load tests' client (Locust's FastHttpUser, geventhttpclient) decodes every body by its Content-Encoding: a 304
that kept the stored variant's `Content-Encoding: br` (or gzip) made it decode an empty body and fail ("brotli:
decoder failed", "Error -5 while decompressing data: incomplete or truncated stream": the recipe reads that failed
in every load test through the edge). RFC 9110 15.4.5: a 304 carries the validator and cache fields, not the
representation's metadata."""

from __future__ import annotations

import http.client
import http.server
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import brotli
import pytest

from potluck_ops.layout import find_repo_root
from potluck_ops.ports import HOST, pick_free_ports
from potluck_ops.varnish import KEY_HEADER, start_varnish, stop_varnish

REPO = find_repo_root()
BODY = b'{"id": "r1", "title": "Soup"}' * 40
ETAG = '"v1"'


class _Api(http.server.BaseHTTPRequestHandler):
    """What the API answers for a public recipe: br- or gzip-encoded by Accept-Encoding, keys, ETag, public."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = brotli.compress(BODY) if "br" in self.headers.get("Accept-Encoding", "") else BODY
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if body is not BODY:
            self.send_header("Content-Encoding", "br")
        self.send_header("Vary", "Accept-Encoding")
        self.send_header("ETag", ETAG)
        self.send_header("Cache-Control", "public, max-age=60, s-maxage=300")
        self.send_header(KEY_HEADER, "recipe:r1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[int]:
    port, api_port = pick_free_ports(2)
    api = http.server.ThreadingHTTPServer((HOST, api_port), _Api)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    varnishd = start_varnish(REPO / "deploy", tmp_path, "edge-1", port, [api_port], os.environ)
    try:
        # The node serves from its cache only while its lease runs (the API's heartbeat grants it).
        _request(port, "PURGE", "/", {"X-Edge-Lease": str(time.time() + 300)})
        yield port
    finally:
        stop_varnish(tmp_path, "edge-1")
        if varnishd.poll() is None:
            varnishd.kill()
        varnishd.wait(10)
        api.shutdown()
        api.server_close()


def _request(port: int, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("accept", ["gzip, deflate, br", "identity"])
def test_a_304_from_the_edge_has_no_content_encoding(edge: int, accept: str) -> None:
    path = "/api/v1/recipes/r1"
    status, headers, body = _request(edge, "GET", path, {"Accept-Encoding": accept})
    assert status == 200
    assert headers.get("content-encoding") == ("br" if "br" in accept else None)
    status, headers, _ = _request(edge, "GET", path, {"Accept-Encoding": accept})
    assert headers["x-cache"] == "HIT"

    for condition in (ETAG, f"W/{ETAG}", f'"v0", {ETAG}', "*"):
        status, headers, body = _request(edge, "GET", path, {"Accept-Encoding": accept, "If-None-Match": condition})
        assert (status, headers["x-cache"], body) == (304, "HIT", b""), condition
        assert headers["etag"] == ETAG
        assert "content-encoding" not in headers
        assert "vary" in headers

    # Another version's ETag: the stored variant, whole.
    status, headers, body = _request(edge, "GET", path, {"Accept-Encoding": accept, "If-None-Match": '"v0"'})
    assert status == 200
    assert (brotli.decompress(body) if headers.get("content-encoding") == "br" else body) == BODY
