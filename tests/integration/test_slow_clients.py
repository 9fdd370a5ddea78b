"""Issue 18, finding 15: a request whose headers or body never finish is cut off, on a real socket.

The app runs under uvicorn as `potluck serve` runs it (potluck.cli.serving's protocol and options), with short
deadlines; a client dribbles bytes and the test times how long the server keeps the connection.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from potluck.app import create_app
from potluck.cli.serving import DEFAULT_PROTOCOL, DeadlineH11Protocol, server_options
from potluck.config import ApiSettings, DatabaseSettings, Settings
from tests.integration.conftest import _fast_auth
from tests.support.eventually import eventually

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5


class ShortDeadlines(DEFAULT_PROTOCOL):  # type: ignore[misc,valid-type]
    header_timeout_seconds = HEADER_TIMEOUT
    max_header_bytes = 4096


class ShortDeadlinesH11(DeadlineH11Protocol):
    header_timeout_seconds = HEADER_TIMEOUT
    max_header_bytes = 4096


@pytest.fixture(params=[ShortDeadlines, ShortDeadlinesH11], ids=["httptools", "h11"])
async def port(request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path) -> AsyncIterator[int]:
    database = tmp_path / "potluck.db"
    shutil.copyfile(sqlite_template, database)
    api = ApiSettings(body_timeout_seconds=BODY_TIMEOUT, max_header_bytes=4096)
    settings = Settings(
        data_dir=tmp_path / "data",
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{database}"),
        auth=_fast_auth(),
        api=api,
    )
    app = create_app(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    options = {**server_options(api, keep_alive=5), "http": request.param}
    config = uvicorn.Config(app, lifespan="on", log_config=None, log_level="warning", **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))

    def started() -> bool:
        assert not task.done(), "uvicorn did not start"
        return server.started

    try:
        await eventually(started, 30, interval=0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


async def _dribble_until_closed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    """Send `data` a byte every 0.2 s until the server closes; what it answered."""
    answer = b""
    for byte in data:
        if reader.at_eof():
            break
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            break
        try:
            answer += await asyncio.wait_for(reader.read(4096), 0.2)
        except TimeoutError:
            continue
        if reader.at_eof():
            break
    return answer


async def test_headers_that_never_finish_are_cut_off(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.monotonic()
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    answer = await asyncio.wait_for(_dribble_until_closed(reader, writer, request), 20)
    elapsed = time.monotonic() - start
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert HEADER_TIMEOUT * 0.9 <= elapsed < HEADER_TIMEOUT + 3


async def test_a_silent_connection_is_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    assert time.monotonic() - start < HEADER_TIMEOUT + 3
    writer.close()


async def test_oversized_headers_are_431(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400")), answer


async def test_a_body_that_never_finishes_is_408(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 500\r\n\r\n"
    )
    writer.write(head)
    await writer.drain()
    start = time.monotonic()
    answer = await asyncio.wait_for(_dribble_until_closed(reader, writer, b"{" + b" " * 400), 20)
    elapsed = time.monotonic() - start
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"application/problem+json" in answer
    assert BODY_TIMEOUT * 0.9 <= elapsed < BODY_TIMEOUT + 3


async def test_a_normal_keep_alive_client_is_unaffected(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(2):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 5)
        assert status.startswith(b"HTTP/1.1 200"), status
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        # Idle between requests for longer than the header deadline: keep-alive governs this gap, not it.
        await asyncio.sleep(HEADER_TIMEOUT * 1.5)
    writer.close()
