from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from potluck.cache.keys import search_key
from potluck.search.query import (
    MAX_OFFSET,
    Hit,
    SearchCursor,
    SearchQueryError,
    Term,
    WebsearchParts,
    decode_cursor,
    encode_cursor,
    fold,
    fts5_expression,
    next_cursor,
    normalise,
    parse_text,
    tsquery_prefix_literal,
    websearch_parts,
)


def _render(q: str, **kwargs: bool) -> str:
    return parse_text(q, **kwargs).render()


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("Tomato  Soup", "tomato soup"),
        ("  tomato\tsoup  ", "tomato soup"),
        ("Crème BRÛLÉE", "creme brulee"),
        ('"Tomato Soup"', '"tomato soup"'),
        ('"tomato soup', '"tomato soup"'),  # an unclosed quote runs to the end, as in websearch_to_tsquery
        ("soup -chicken", "soup -chicken"),
        ('soup -"chicken stock"', 'soup -"chicken stock"'),
        ("salad OR chicken", "salad or chicken"),
        ("or salad or or chicken or", "salad or chicken"),
        ("olive-oil", '"olive oil"'),
        ("soup soup", "soup"),
        ("\uff54\uff4f\uff4d\uff41\uff54\uff4f", "tomato"),  # fullwidth letters (NFKC)
        ("mac & cheese!", "mac cheese"),
        ("under_score", '"under score"'),
        ('"or"', '"or"'),
        ("soup or -chicken", "soup"),  # an alternative with nothing positive in it is dropped
    ],
)
def test_text_normalisation(raw: str, canonical: str) -> None:
    assert _render(raw) == canonical


@pytest.mark.parametrize("raw", ["", "   ", "-chicken", '-"chicken soup"', "!!! ???", "or or", '""', "- - -"])
def test_a_query_without_a_positive_word_is_refused(raw: str) -> None:
    with pytest.raises(SearchQueryError) as exc:
        parse_text(raw)
    assert exc.value.param == "q"


def test_limits() -> None:
    with pytest.raises(SearchQueryError):
        parse_text("x" * 201)
    with pytest.raises(SearchQueryError):
        parse_text(" ".join(f"w{i}" for i in range(17)))
    assert len(parse_text("a" * 200).groups[0][0].words[0]) == 60


def test_prefix_applies_to_a_trailing_plain_word_only() -> None:
    assert parse_text("tomato so", prefix=True).prefix_word == "so"
    assert parse_text("tomato so").prefix_word is None
    assert parse_text('tomato "so up"', prefix=True).prefix_word is None
    assert parse_text("tomato -so", prefix=True).prefix_word is None
    assert parse_text("soup or tom", prefix=True).prefix_word == "tom"


def test_websearch_parts_split_off_the_prefix_alternative() -> None:
    assert websearch_parts(parse_text("tomato soup")) == WebsearchParts("tomato soup")
    parts = websearch_parts(parse_text("salad or tomato -beef so", prefix=True))
    assert (parts.text, parts.prefix_group, parts.prefix) == ("salad", "tomato -beef", "so")
    parts = websearch_parts(parse_text("to", prefix=True))
    assert (parts.text, parts.prefix_group, parts.prefix) == ("", "", "to")
    assert tsquery_prefix_literal("tom") == "'tom':*"


@pytest.mark.parametrize(
    ("raw", "expression"),
    [
        ("tomato soup", '("tomato" AND "soup")'),
        ('"tomato soup"', '("tomato soup")'),
        ("soup -chicken -beef", '(("soup") NOT ("chicken" OR "beef"))'),
        ("salad or chicken", '("salad") OR ("chicken")'),
        ("chicken with rice", '("chicken" AND "rice")'),  # stop words, as PostgreSQL's english config drops them
        ("the", '("the")'),  # ... unless nothing else is left
        ('"mac and cheese"', '("mac and cheese")'),
        ("NEAR AND NOT", '("near")'),  # FTS5 operators are only words here ("and", "not": stop words)
        ("AND OR NOT NEAR", '("and") OR ("near")'),
    ],
)
def test_fts5_expression(raw: str, expression: str) -> None:
    assert fts5_expression(parse_text(raw)) == expression


def test_fts5_prefix() -> None:
    assert fts5_expression(parse_text("tomato so", prefix=True)) == '("tomato" AND "so"*)'


@pytest.fixture(scope="module")
def fts() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(a, tokenize='porter unicode61 remove_diacritics 2')")
    conn.execute("INSERT INTO t VALUES ('tomato soup with basil')")
    yield conn
    conn.close()


@settings(max_examples=400, deadline=None)
@given(q=st.text(max_size=200), prefix=st.booleans())
def test_any_input_parses_or_is_refused_and_fts5_accepts_the_expression(
    fts: sqlite3.Connection, q: str, prefix: bool
) -> None:
    try:
        parsed = parse_text(q, prefix=prefix)
    except SearchQueryError:
        return
    fts.execute("SELECT count(*) FROM t WHERE t MATCH ?", (fts5_expression(parsed),)).fetchall()
    # Rendering is a fixed point: the canonical text parses back to itself.
    assert parse_text(parsed.render()).render() == parsed.render()


@given(words=st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), min_size=1, max_size=5))
def test_spacing_and_case_do_not_change_the_cache_key(words: list[str]) -> None:
    if all(w == "or" for w in words):
        return
    plain = normalise(" ".join(words))
    shouty = normalise("   " + "  \t ".join(w.upper() for w in words) + " ")
    assert search_key(7, plain.canonical()) == search_key(7, shouty.canonical())


def test_filters_are_canonical() -> None:
    a = normalise(
        "soup",
        cuisine=" Italian ",
        tags=["Quick", "vegan,quick"],
        include_ingredients=["Garlic", " olive  oil "],
        exclude_ingredients=[],
        min_rating=4.0,
    )
    b = normalise(
        "soup", cuisine="italian", tags=["vegan", "quick"], include_ingredients=["olive oil", "garlic"], min_rating=4
    )
    assert a.canonical() == b.canonical()
    assert a.tags == ("quick", "vegan")
    assert a.include_ingredients == ("garlic", "olive oil")
    assert normalise("soup", sort="newest").canonical() != normalise("soup").canonical()
    assert normalise("soup", limit=10).canonical() != normalise("soup").canonical()
    assert normalise("soup", prefix=True).canonical() != normalise("soup").canonical()
    assert normalise("soup").canonical()["cursor"] is None


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"sort": "best"}, "sort"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"min_rating": 5.5}, "min_rating"),
        ({"max_total_minutes": -1}, "max_total_minutes"),
        ({"tags": [f"t{i}" for i in range(11)]}, "tag"),
        ({"tags": ["x" * 41]}, "tag"),
        ({"include_ingredients": ["x" * 101]}, "ingredient"),
        ({"cuisine": "x" * 51}, "cuisine"),
        ({"cursor": "garbage"}, "cursor"),
    ],
)
def test_bad_requests_name_their_parameter(kwargs: dict[str, object], param: str) -> None:
    with pytest.raises(SearchQueryError) as exc:
        normalise("soup", **kwargs)  # type: ignore[arg-type]
    assert exc.value.param == param


timestamps = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))


@given(
    fuzzy=st.booleans(),
    offset=st.integers(0, MAX_OFFSET),
    ts=timestamps,
    rating=st.floats(0, 5, allow_nan=False),
    count=st.integers(0, 10**9),
    row_id=st.uuids(),
)
def test_cursors_round_trip(
    fuzzy: bool, offset: int, ts: datetime, rating: float, count: int, row_id: uuid.UUID
) -> None:
    fp = normalise("soup").fingerprint
    cases = [
        ("relevance", SearchCursor(fuzzy, offset=offset)),
        ("newest", SearchCursor(fuzzy, created_at=ts, id=row_id)),
        ("rating", SearchCursor(fuzzy, rating=rating, rating_count=count, id=row_id)),
    ]
    for sort, cursor in cases:
        assert decode_cursor(encode_cursor(cursor, sort, fp), sort, fp) == cursor  # type: ignore[arg-type]


def test_a_cursor_belongs_to_its_search() -> None:
    query = normalise("soup", sort="newest")
    token = encode_cursor(
        SearchCursor(False, created_at=datetime.now(UTC), id=uuid.uuid4()), "newest", query.fingerprint
    )
    assert normalise("soup", sort="newest", cursor=token, limit=50).cursor is not None  # another page size is fine
    for other in (
        {"q": "stew", "sort": "newest"},
        {"q": "soup", "sort": "rating"},
        {"q": "soup", "sort": "newest", "cuisine": "thai"},
    ):
        with pytest.raises(SearchQueryError, match="another search"):
            normalise(str(other.pop("q")), cursor=token, **other)  # type: ignore[arg-type]


@pytest.mark.parametrize("token", ["", "!!!", "W10", "WzEsMl0", "x" * 400, "bm90IGpzb24"])
def test_garbage_cursors(token: str) -> None:
    with pytest.raises(SearchQueryError):
        decode_cursor(token, "relevance", "abc")


def _hits(n: int) -> list[Hit]:
    return [Hit(uuid.uuid4(), datetime(2026, 1, 1, tzinfo=UTC), 4.5, i) for i in range(n)]


def test_next_cursor() -> None:
    query = normalise("soup", limit=3)
    assert next_cursor(query, _hits(3), fuzzy=False, has_more=False) is None
    token = next_cursor(query, _hits(3), fuzzy=True, has_more=True)
    assert token is not None
    page2 = normalise("soup", limit=3, cursor=token)
    assert page2.cursor == SearchCursor(True, offset=3)
    token3 = next_cursor(page2, _hits(3), fuzzy=True, has_more=True)
    assert token3 is not None
    assert normalise("soup", cursor=token3).cursor == SearchCursor(True, offset=6)
    # Relevance stops at MAX_OFFSET.
    deep = normalise("soup", limit=100).with_cursor(SearchCursor(False, offset=MAX_OFFSET - 100))
    assert next_cursor(deep, _hits(100), fuzzy=False, has_more=True) is None
    hits = _hits(2)
    rated = normalise("soup", sort="rating")
    token = next_cursor(rated, hits, fuzzy=False, has_more=True)
    assert token is not None
    assert normalise("soup", sort="rating", cursor=token).cursor == SearchCursor(
        False, rating=4.5, rating_count=1, id=hits[-1].id
    )


def test_fold() -> None:
    assert fold("Ça Crème ÅNGSTRÖM ﬁ") == "ca creme angstrom fi"


def test_terms_render_as_websearch() -> None:
    assert Term(("a", "b"), negated=True).render() == '-"a b"'
    assert Term(("or",)).render() == '"or"'
