"""Which Accept-Encoding values choose Brotli (RFC 9110 12.5.3: q=0 means "not acceptable")."""

from __future__ import annotations

import pytest

from potluck.kit.compression import accepts_br


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("br", True),
        ("gzip, deflate, br", True),
        ("br;q=0.5, gzip", True),
        ("BR , gzip", True),
        ("gzip, br;q=1.0", True),
        ("", False),
        ("gzip", False),
        ("identity", False),
        ("br;q=0, gzip", False),
        ("gzip, br; q=0.000", False),
        ("brotli, gzip", False),
        ("xbr, gzip", False),
        ("br;q=nonsense", False),
    ],
)
def test_accepts_br(header: str, expected: bool) -> None:
    assert accepts_br(header) is expected
