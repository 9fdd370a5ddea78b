from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from potluck.kit.cursor import MAX_PAGE, InvalidCursorError, decode_cursor, encode_cursor, next_page, with_page
from potluck.recipe.relevance import LIST_CACHE_PAGES, page_is_cached

timestamps = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))


@given(ts=timestamps, row_id=st.uuids())
def test_round_trip_is_exact_to_the_microsecond(ts: datetime, row_id: uuid.UUID) -> None:
    cursor = decode_cursor(encode_cursor(ts, row_id))
    assert cursor.created_at == ts
    assert cursor.id == row_id


def test_naive_timestamps_are_taken_as_utc() -> None:
    row_id = uuid.uuid4()
    naive = datetime(2026, 1, 2, 3, 4, 5, 678901)
    assert decode_cursor(encode_cursor(naive, row_id)).created_at == naive.replace(tzinfo=UTC)


def test_cursor_is_url_safe_and_opaque() -> None:
    token = encode_cursor(datetime.now(UTC), uuid.uuid4())
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize(
    "token",
    ["", "!!!", "bm90IGpzb24", "WzEsMl0", "WyJ4IiwiYWIiXQ", "W3RydWUsIjAwIl0", "x" * 300, "eyJhIjoxfQ"],
)
def test_garbage_is_rejected_with_a_clear_error(token: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(token)


@given(st.text(max_size=120))
def test_no_input_crashes_the_decoder(token: str) -> None:
    try:
        decode_cursor(token)
    except InvalidCursorError:
        pass


def test_order_of_cursors_follows_time() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    a, b = (
        decode_cursor(encode_cursor(base, uuid.uuid4())),
        decode_cursor(encode_cursor(base + timedelta(microseconds=1), uuid.uuid4())),
    )
    assert a.created_at < b.created_at


def _token(body: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode("ascii")


@pytest.mark.parametrize("micros", [-1, 2**63, 2**62, 10**30, 1.5, True, "0"])
def test_out_of_range_or_mistyped_timestamps_are_rejected(micros: object) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(_token([micros, uuid.uuid4().hex]))


@pytest.mark.parametrize("hex_id", ["{" + "0" * 30 + "}", "0" * 31, "g" * 32, 7])
def test_ids_must_be_32_hex_digits(hex_id: object) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(_token([0, hex_id]))


@given(ts=timestamps, row_id=st.uuids(), page=st.integers(2, MAX_PAGE))
def test_a_page_number_round_trips_with_the_position(ts: datetime, row_id: uuid.UUID, page: int) -> None:
    cursor = decode_cursor(encode_cursor(ts, row_id, page))
    assert (cursor.created_at, cursor.id, cursor.page) == (ts, row_id, page)


def test_cursors_without_a_number_still_decode_and_numbers_are_capped() -> None:
    row_id, now = uuid.uuid4(), datetime.now(UTC)
    assert decode_cursor(_token([0, row_id.hex])).page is None  # issued before cursors counted pages
    assert decode_cursor(encode_cursor(now, row_id, MAX_PAGE * 10)).page == MAX_PAGE
    assert decode_cursor(with_page(encode_cursor(now, row_id), 3)) == decode_cursor(encode_cursor(now, row_id, 3))
    assert decode_cursor(with_page(encode_cursor(now, row_id, 3), None)).page is None


@pytest.mark.parametrize("page", [-1, 0, 1, MAX_PAGE + 1, 2.0, True, "2", None])
def test_page_numbers_out_of_range_or_mistyped_are_rejected(page: object) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(_token([0, uuid.uuid4().hex, page]))


def test_pages_are_numbered_from_the_first_and_only_the_first_few_are_cached() -> None:
    first = None
    second = decode_cursor(encode_cursor(datetime.now(UTC), uuid.uuid4(), next_page(first)))
    assert (next_page(first), second.page, next_page(second)) == (2, 2, 3)
    assert next_page(decode_cursor(encode_cursor(datetime.now(UTC), uuid.uuid4()))) is None
    assert [page_is_cached(n) for n in (1, LIST_CACHE_PAGES, LIST_CACHE_PAGES + 1, MAX_PAGE, None)] == [
        True,
        True,
        False,
        False,
        False,
    ]
