"""Opaque keyset cursors over (created_at, id).

A cursor names the last row of a page; the next page is the rows strictly after it in the
(created_at DESC, id DESC) order, so pages stay stable while new rows arrive and page N costs what page 1 costs.

A cursor may also carry the number of the page it opens (2 for the one after the first page): the list cache keeps
only the first pages of a list (recipe/relevance.py, LIST_CACHE_PAGES), and a deep walk is read from a replica
instead of filling the cache page by page on the primary. The number is capped (every page past the cap carries the
cap), and a cursor without one (issued before it existed, or by a list that does not count) decodes to `page=None`.

A cursor comes back from the client, so every decoded field is bounded before it goes near a statement: a
timestamp between the epoch and the year 9999, integers within the column's range. An out-of-range value is an
InvalidCursorError (a 400), never a driver's overflow (once a 500).
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
# Timestamps a cursor may carry: every row was created after the epoch and before the year 9999.
MAX_MICROS = (datetime(9999, 1, 1, tzinfo=UTC) - _EPOCH) // _MICROSECOND
# An INTEGER column (PostgreSQL int4): what a count in a cursor may hold.
MAX_INT32 = 2**31 - 1


class InvalidCursorError(ValueError):
    """The cursor was not produced by encode_cursor."""


# The highest page number a cursor carries: deeper pages carry this one (all the list cache needs is "deep").
MAX_PAGE = 1_000


@dataclass(frozen=True, slots=True)
class Cursor:
    created_at: datetime
    id: uuid.UUID
    # The number of the page this cursor opens (2 to MAX_PAGE), when the page that issued it counted.
    page: int | None = None


def encode_cursor(created_at: datetime, row_id: uuid.UUID, page: int | None = None) -> str:
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    micros = (created_at - _EPOCH) // _MICROSECOND
    fields: list[object] = [micros, row_id.hex]
    if page is not None:
        fields.append(min(page, MAX_PAGE))
    return base64.urlsafe_b64encode(orjson.dumps(fields)).rstrip(b"=").decode("ascii")


def next_page(cursor: Cursor | None) -> int | None:
    """The number of the page after the one `cursor` opens (None: the first page): 2 after the first, None when
    `cursor` carries no number."""
    if cursor is None:
        return 2
    return None if cursor.page is None else cursor.page + 1


def with_page(token: str, page: int | None) -> str:
    """`token` (a cursor this module encoded) naming `page` instead of the number it carries."""
    cursor = decode_cursor(token)
    return encode_cursor(cursor.created_at, cursor.id, page)


def is_int(value: object) -> bool:
    """A JSON integer (a bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def bounded_int(value: object, low: int, high: int) -> int:
    """`value` if it is an integer in [low, high], else InvalidCursorError."""
    if not is_int(value) or not low <= value <= high:  # type: ignore[operator]
        raise InvalidCursorError("cursor has a value out of range")
    return value  # type: ignore[return-value]


def timestamp_from_micros(value: object) -> datetime:
    """Microseconds since the epoch (bounded) as an aware datetime."""
    return _EPOCH + bounded_int(value, 0, MAX_MICROS) * _MICROSECOND


def uuid_from_hex(value: object) -> uuid.UUID:
    if not isinstance(value, str) or len(value) != 32:
        raise InvalidCursorError("cursor has the wrong shape")
    try:
        return uuid.UUID(hex=value)
    except ValueError as exc:
        raise InvalidCursorError("cursor is not valid") from exc


def decode_cursor(token: str) -> Cursor:
    if not token or len(token) > 200:
        raise InvalidCursorError("cursor is empty or too long")
    try:
        parsed = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursorError("cursor is not valid") from exc
    if not (isinstance(parsed, list) and len(parsed) in (2, 3)):
        raise InvalidCursorError("cursor has the wrong shape")
    micros, hex_id, *rest = parsed
    page = bounded_int(rest[0], 2, MAX_PAGE) if rest else None
    return Cursor(created_at=timestamp_from_micros(micros), id=uuid_from_hex(hex_id), page=page)
