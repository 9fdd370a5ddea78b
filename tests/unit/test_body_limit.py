"""The body-limit middleware on its own: answers before the application reads anything."""

from __future__ import annotations

from typing import Any

import orjson

from potluck.middleware import BodySizeLimitMiddleware


async def _call(headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[list[dict[str, Any]], bool]:
    sent: list[dict[str, Any]] = []
    reached = False

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal reached
        reached = True
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    await BodySizeLimitMiddleware(app, max_bytes=10)(scope, receive, send)
    return sent, reached


def _status_and_type(sent: list[dict[str, Any]]) -> tuple[int, str]:
    body = orjson.loads(sent[1]["body"])
    assert body["status"] == sent[0]["status"]
    assert dict(sent[0]["headers"])[b"content-type"] == b"application/problem+json"
    return sent[0]["status"], body["type"].rsplit("/", 1)[-1]


async def test_non_numeric_content_length_is_a_bad_request_not_too_large() -> None:
    sent, reached = await _call([(b"content-length", b"12abc")], [b"x"])
    assert not reached
    assert _status_and_type(sent) == (400, "invalid-content-length")


async def test_declared_length_over_the_limit_is_413_before_the_app_runs() -> None:
    sent, reached = await _call([(b"content-length", b"11")], [b"x" * 11])
    assert not reached
    assert _status_and_type(sent) == (413, "payload-too-large")


async def test_chunked_body_over_the_limit_is_413_while_streaming() -> None:
    sent, _ = await _call([], [b"x" * 6, b"x" * 6])
    assert _status_and_type(sent) == (413, "payload-too-large")


async def test_body_within_the_limit_reaches_the_app() -> None:
    sent, reached = await _call([(b"content-length", b"10")], [b"x" * 10])
    assert reached
    assert sent[0]["status"] == 204
