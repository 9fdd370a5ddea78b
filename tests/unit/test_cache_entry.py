"""Unit tests for the cache entry encoding and XFetch early refresh (potluck.cache.entry)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from potluck.cache.entry import (
    FILL_ID_PREFIX_SIZE,
    HEADER_SIZE,
    LEASE_PREFIX,
    Entry,
    decode,
    encode,
    is_lease,
    lease_prefix,
    new_token,
    should_refresh_early,
)

# ---------------------------------------------------------------------------------------------------------------
# encode / decode


@given(
    payload=st.one_of(st.none(), st.binary(max_size=300)),
    meta=st.binary(max_size=600),
    expires_at_ms=st.integers(min_value=0, max_value=2**62),
    delta_ms=st.integers(min_value=0, max_value=2**31 - 1),
)
def test_round_trip(payload: bytes | None, meta: bytes, expires_at_ms: int, delta_ms: int) -> None:
    raw = encode(payload, meta, expires_at_ms, delta_ms)
    entry = decode(raw)
    assert entry is not None
    assert entry.payload == payload
    assert entry.meta == meta
    assert entry.expires_at_ms == expires_at_ms
    assert entry.delta_ms == delta_ms
    assert len(entry.fill_id) == 8
    assert entry.identity == raw[:FILL_ID_PREFIX_SIZE]
    assert not is_lease(raw)


def test_negative_entry_is_distinct_from_empty_value() -> None:
    neg = decode(encode(None, b"m", 1000, 5))
    empty = decode(encode(b"", b"m", 1000, 5))
    assert neg is not None
    assert empty is not None
    assert neg.payload is None
    assert empty.payload == b""
    assert neg.identity[:1] == b"N"
    assert empty.identity[:1] == b"V"


def test_negative_entry_has_no_payload_bytes() -> None:
    raw = encode(None, b"meta", 1000, 5)
    assert raw[:1] == b"N"
    assert len(raw) == HEADER_SIZE + len(b"meta")


@pytest.mark.parametrize("meta_len", [0, 1, 2, 255, 256, 1000, 65535])
def test_meta_of_various_lengths(meta_len: int) -> None:
    meta = bytes(i % 251 for i in range(meta_len))
    payload = b"\x00payload|with|pipes\xff"
    entry = decode(encode(payload, meta, 123_456, 78))
    assert entry is not None
    assert entry.meta == meta
    assert entry.payload == payload


def test_meta_containing_header_like_bytes_does_not_confuse_payload() -> None:
    meta = b"V" * 30
    payload = b"N" * 30
    entry = decode(encode(payload, meta, 1, 1))
    assert entry is not None
    assert (entry.meta, entry.payload) == (meta, payload)


def test_delta_is_clamped_into_range() -> None:
    low = decode(encode(b"x", b"", 1, -50))
    high = decode(encode(b"x", b"", 1, 2**40))
    assert low is not None
    assert high is not None
    assert low.delta_ms == 0
    assert high.delta_ms == 2**31 - 1


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"V",
        b"N",
        b"garbage",
        b"X" + b"\x00" * 40,
        b"v" + b"\x00" * 40,
        b"1",
        b"L|abcdef0123456789|1700000000000",
        lease_prefix(b"token") + b"123",
    ],
)
def test_unreadable_bytes_decode_to_none(raw: bytes) -> None:
    assert decode(raw) is None


def test_short_bytes_decode_to_none() -> None:
    raw = encode(b"payload", b"meta", 1000, 5)
    # Every truncation that cuts into the header or the meta is unreadable.
    for cut in range(HEADER_SIZE + len(b"meta")):
        assert decode(raw[:cut]) is None, cut
    # Cutting only into the payload still decodes, with a shorter payload.
    partial = decode(raw[: HEADER_SIZE + len(b"meta") + 2])
    assert partial is not None
    assert partial.payload == b"pa"


def test_meta_length_beyond_data_decodes_to_none() -> None:
    raw = bytearray(encode(b"", b"", 1000, 5))
    raw[HEADER_SIZE - 2 : HEADER_SIZE] = (10).to_bytes(2, "big")
    assert decode(bytes(raw) + b"short") is None


@given(payload=st.one_of(st.none(), st.binary(max_size=50)), meta=st.binary(max_size=50))
def test_identity_differs_between_two_encodes(payload: bytes | None, meta: bytes) -> None:
    raw1 = encode(payload, meta, 1000, 5)
    raw2 = encode(payload, meta, 1000, 5)
    e1, e2 = decode(raw1), decode(raw2)
    assert e1 is not None
    assert e2 is not None
    assert e1.fill_id != e2.fill_id
    assert e1.identity != e2.identity
    assert e1.identity == raw1[:FILL_ID_PREFIX_SIZE]
    assert e2.identity == raw2[:FILL_ID_PREFIX_SIZE]
    assert len(e1.identity) == FILL_ID_PREFIX_SIZE
    # The identity of one fill does not match the other fill (the compare-and-set must fail).
    assert not raw2.startswith(e1.identity)


def test_lease_prefix_and_is_lease() -> None:
    token = new_token()
    assert token != new_token()
    assert len(token) == 16
    assert token.isalnum()
    prefix = lease_prefix(token)
    assert prefix == LEASE_PREFIX + token + b"|"
    assert prefix.startswith(b"L|")
    lease = prefix + b"1700000000000"
    assert is_lease(lease)
    assert decode(lease) is None
    assert not is_lease(encode(b"L|looks like a lease", b"", 1, 1))
    assert not is_lease(encode(None, b"", 1, 1))
    assert not is_lease(b"")
    assert not is_lease(b"L")
    # One token's prefix does not match another token's lease.
    assert not (lease_prefix(b"abc") + b"1").startswith(lease_prefix(b"ab"))


# ---------------------------------------------------------------------------------------------------------------
# should_refresh_early (XFetch)


def _entry(expires_at_ms: int, delta_ms: int) -> Entry:
    return Entry(fill_id=b"\x00" * 8, expires_at_ms=expires_at_ms, delta_ms=delta_ms, meta=b"", payload=b"x")


def _refresh_rate(now_ms: int, entry: Entry, beta: float, seed: int = 1234, n: int = 4000) -> float:
    rng = random.Random(seed)
    hits = 0
    for _ in range(n):
        rand = 1.0 - rng.random()  # uniform in (0, 1]
        hits += should_refresh_early(now_ms, entry, beta, rand)
    return hits / n


def test_never_refreshes_far_from_expiry_with_small_delta() -> None:
    entry = _entry(expires_at_ms=1_000_000, delta_ms=10)
    rng = random.Random(7)
    for _ in range(5000):
        rand = 1.0 - rng.random()
        assert not should_refresh_early(0, entry, 1.0, rand)
    # Even the smallest positive double: 10 * -ln(5e-324) is about 7_444, far below 1_000_000.
    assert not should_refresh_early(0, entry, 1.0, 5e-324)


@pytest.mark.parametrize("delta_ms", [0, 1, 50, 10_000])
@pytest.mark.parametrize("now_ms", [1000, 1001, 10**9])
def test_always_refreshes_at_or_past_expiry(delta_ms: int, now_ms: int) -> None:
    entry = _entry(expires_at_ms=1000, delta_ms=delta_ms)
    rng = random.Random(99)
    for rand in [1.0, 0.5, 1e-300, *(1.0 - rng.random() for _ in range(200))]:
        assert should_refresh_early(now_ms, entry, 1.0, rand)


def test_refresh_probability_increases_as_expiry_nears() -> None:
    entry = _entry(expires_at_ms=10_000, delta_ms=1000)
    times = [0, 5000, 7000, 8000, 8500, 9000, 9500, 9800, 9950, 10_000]
    rates = [_refresh_rate(now, entry, 1.0) for now in times]
    assert rates == sorted(rates), rates
    assert rates[0] < 0.01
    assert rates[-1] == 1.0
    # Strictly increasing over the interesting window, matching exp(-(expiry - now) / delta).
    assert rates[3] < rates[5] < rates[7]
    assert rates[5] == pytest.approx(0.368, abs=0.04)  # 1000 ms before expiry: e^-1


@given(
    now_ms=st.integers(min_value=0, max_value=20_000),
    later=st.integers(min_value=0, max_value=20_000),
    rand=st.floats(min_value=1e-300, max_value=1.0),
)
def test_refresh_is_monotonic_in_time_for_a_fixed_rand(now_ms: int, later: int, rand: float) -> None:
    entry = _entry(expires_at_ms=10_000, delta_ms=700)
    if should_refresh_early(now_ms, entry, 1.0, rand):
        assert should_refresh_early(now_ms + later, entry, 1.0, rand)


def test_larger_delta_means_earlier_refresh() -> None:
    now = 9000
    small = _refresh_rate(now, _entry(10_000, 200), 1.0)
    medium = _refresh_rate(now, _entry(10_000, 1000), 1.0)
    large = _refresh_rate(now, _entry(10_000, 5000), 1.0)
    assert small < medium < large


def test_larger_beta_means_earlier_refresh() -> None:
    now = 9000
    entry = _entry(10_000, 500)
    rates = [_refresh_rate(now, entry, beta) for beta in (0.5, 1.0, 2.0, 4.0)]
    assert rates[0] < rates[1] < rates[2] < rates[3], rates


@given(
    delta_ms=st.integers(min_value=1, max_value=10_000),
    beta1=st.floats(min_value=0.0, max_value=10.0),
    beta2=st.floats(min_value=0.0, max_value=10.0),
    gap=st.integers(min_value=0, max_value=50_000),
    rand=st.floats(min_value=1e-300, max_value=1.0),
)
def test_beta_monotonic_for_a_fixed_rand(delta_ms: int, beta1: float, beta2: float, gap: int, rand: float) -> None:
    lo, hi = sorted((beta1, beta2))
    entry = _entry(100_000, delta_ms)
    if should_refresh_early(100_000 - gap, entry, lo, rand):
        assert should_refresh_early(100_000 - gap, entry, hi, rand)


def test_rand_one_refreshes_only_at_expiry() -> None:
    entry = _entry(expires_at_ms=10_000, delta_ms=5000)
    # ln(1) == 0: no early refresh at all, whatever the delta or beta.
    assert not should_refresh_early(9999, entry, 100.0, 1.0)
    assert should_refresh_early(10_000, entry, 100.0, 1.0)


def test_tiny_rand_refreshes_early() -> None:
    entry = _entry(expires_at_ms=10_000, delta_ms=1000)
    # -ln(1e-4) ~ 9.2: refreshes ~9.2 s before expiry.
    assert should_refresh_early(1000, entry, 1.0, 1e-4)
    assert not should_refresh_early(500, entry, 1.0, 1e-4)
    assert should_refresh_early(0, entry, 1.0, 5e-324)  # smallest positive double: ~744 * delta


@pytest.mark.parametrize("rand", [0.0, -0.5])
def test_nonpositive_rand_falls_back_to_plain_expiry(rand: float) -> None:
    entry = _entry(expires_at_ms=10_000, delta_ms=1000)
    assert not should_refresh_early(9999, entry, 1.0, rand)
    assert should_refresh_early(10_000, entry, 1.0, rand)


def test_zero_delta_never_refreshes_early() -> None:
    entry = _entry(expires_at_ms=10_000, delta_ms=0)
    assert not should_refresh_early(9999, entry, 10.0, 1e-300)
    assert should_refresh_early(10_000, entry, 10.0, 1e-300)
