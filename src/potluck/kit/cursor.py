"""Opaque keyset cursors over (created_at, id).

A cursor names the last row of a page; the next page is the rows strictly after it in the
(created_at DESC, id DESC) order, so pages stay stable while new rows arrive and page N costs what page 1 costs.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class InvalidCursorError(ValueError):
    """The cursor was not produced by encode_cursor."""


@dataclass(frozen=True, slots=True)
class Cursor:
    created_at: datetime
    id: uuid.UUID


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    micros = (created_at - _EPOCH) // _MICROSECOND
    raw = orjson.dumps([micros, row_id.hex])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(token: str) -> Cursor:
    if not token or len(token) > 200:
        raise InvalidCursorError("cursor is empty or too long")
    try:
        parsed = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursorError("cursor is not valid") from exc
    if not (isinstance(parsed, list) and len(parsed) == 2):
        raise InvalidCursorError("cursor has the wrong shape")
    micros, hex_id = parsed
    if not isinstance(micros, int) or isinstance(micros, bool) or not isinstance(hex_id, str):
        raise InvalidCursorError("cursor has the wrong shape")
    try:
        return Cursor(created_at=_EPOCH + micros * _MICROSECOND, id=uuid.UUID(hex=hex_id))
    except (ValueError, OverflowError) as exc:
        raise InvalidCursorError("cursor is not valid") from exc
