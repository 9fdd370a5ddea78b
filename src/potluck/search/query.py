"""Search requests, normalised. Pure: no I/O.

`normalise()` turns what a client sent into a `SearchQuery`: the text parsed with web-search syntax (words,
"quoted phrases", -excluded, `or`), filters lower-cased, deduplicated and sorted, the cursor decoded and checked
against the query it came from. `SearchQuery.canonical()` is what the cache key is built from, so two requests
that mean the same search share one cache entry, and the database only ever sees the normalised query: whatever
is cached under a key is exactly what that key's query returns.

The parsed text is rendered back for each backend: `websearch_parts()` for PostgreSQL's websearch_to_tsquery
(plus a prefix term for type-ahead), `fts5_expression()` for SQLite's FTS5 MATCH.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import orjson

from potluck.kit.cursor import MAX_INT32, InvalidCursorError, bounded_int, timestamp_from_micros, uuid_from_hex
from potluck.kit.digest import stable_digest

MAX_QUERY_LENGTH = 200
MAX_TERMS = 16
MAX_WORD_LENGTH = 60
MAX_FILTER_VALUES = 10
MAX_NAME_LENGTH = 100
MAX_LIMIT = 100
# Relevance pages are addressed by offset; ranks past this are not worth their cost (say so in the docs).
MAX_OFFSET = 1000
MAX_CURSOR_LENGTH = 300
CANONICAL_VERSION = 1

Sort = Literal["relevance", "rating", "newest"]
SORTS: tuple[Sort, ...] = ("relevance", "rating", "newest")
_SORT_CODES: dict[str, str] = {"relevance": "r", "rating": "s", "newest": "n"}

# A word is a run of letters and digits (underscore is a separator, as FTS5's unicode61 tokenizer sees it).
_WORD = re.compile(r"[^\W_]+")
# A token: an optionally negated "quoted phrase" (closing quote optional), or a run of non-space, non-quote text.
_TOKEN = re.compile(r'(?P<neg>-)?"(?P<phrase>[^"]*)"?|(?P<word>[^\s"]+)')
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# PostgreSQL's english configuration drops these; FTS5 has no stop words, so the SQLite expression drops them
# too (outside phrases), or "chicken with rice" would demand a literal "with" there and not here.
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can did do does doing don down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own s same she should so some such t than that the
    their theirs them themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with you your yours yourself yourselves""".split()
)


class SearchQueryError(ValueError):
    """The request cannot be searched for; `param` names the query parameter at fault."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


# ---------------------------------------------------------------------------------------------- the text


def _fold_once(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFKC", stripped).casefold()


def fold(text: str) -> str:
    """Compatibility-normalised, case-folded, diacritics removed: the form every comparison uses.

    Repeated until stable (a few characters change again after decomposition), so fold(fold(x)) == fold(x).
    """
    for _ in range(4):
        folded = _fold_once(text)
        if folded == text:
            break
        text = folded
    return text


@dataclass(frozen=True, slots=True)
class Term:
    """One word, or a phrase (several words in order); negated terms must not match."""

    words: tuple[str, ...]
    negated: bool = False
    prefix: bool = False

    def render(self) -> str:
        """Web-search syntax, as websearch_to_tsquery reads it."""
        if len(self.words) == 1 and self.words[0] != "or":
            body = self.words[0]
        else:
            body = '"' + " ".join(self.words) + '"'
        return ("-" if self.negated else "") + body


Group = tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class ParsedText:
    """A disjunction of groups; within a group every positive term must match and no negated one may."""

    groups: tuple[Group, ...]

    def render(self) -> str:
        return " or ".join(_render_group(g) for g in self.groups)

    @property
    def positive_words(self) -> list[str]:
        """Every word of every positive term, first occurrence order (the typo fallback matches on these)."""
        seen: dict[str, None] = {}
        for group in self.groups:
            for term in group:
                if not term.negated:
                    seen.update(dict.fromkeys(term.words))
        return list(seen)

    @property
    def prefix_word(self) -> str | None:
        last = self.groups[-1][-1]
        return last.words[0] if last.prefix else None


def _render_group(group: Iterable[Term]) -> str:
    return " ".join(t.render() for t in group)


def _term(text: str, negated: bool) -> Term | None:
    words = tuple(w[:MAX_WORD_LENGTH] for w in _WORD.findall(text))
    return Term(words, negated) if words else None


def parse_text(q: str, *, prefix: bool = False) -> ParsedText:
    """Parse web-search syntax: words, "phrases", -negation, `or` between alternatives.

    A hyphenated or otherwise joined word ("olive-oil") becomes a phrase of its parts. With `prefix`, the last
    word, if it is a plain positive word, matches as a prefix (type-ahead). Alternatives without a positive term
    are dropped; a query left without any raises SearchQueryError.
    """
    if len(q) > MAX_QUERY_LENGTH:
        raise SearchQueryError(f"q is longer than {MAX_QUERY_LENGTH} characters", "q")
    groups: list[list[Term]] = [[]]
    or_pending = False
    for match in _TOKEN.finditer(fold(q)):
        if match.group("phrase") is not None:
            term = _term(match.group("phrase"), match.group("neg") is not None)
        else:
            raw = match.group("word")
            if raw == "or":
                or_pending = True
                continue
            negated = raw.startswith("-")
            term = _term(raw.lstrip("-"), negated)
        if term is None:
            continue
        if or_pending and groups[-1]:
            groups.append([])
        or_pending = False
        if term not in groups[-1]:
            groups[-1].append(term)
    kept = [tuple(g) for g in groups if any(not t.negated for t in g)]
    if not kept:
        raise SearchQueryError("q needs at least one word to search for", "q")
    if sum(len(g) for g in kept) > MAX_TERMS:
        raise SearchQueryError(f"q has more than {MAX_TERMS} terms", "q")
    if prefix:
        last = kept[-1][-1]
        if not last.negated and len(last.words) == 1:
            kept[-1] = (*kept[-1][:-1], Term(last.words, prefix=True))
    return ParsedText(tuple(kept))


@dataclass(frozen=True, slots=True)
class WebsearchParts:
    """PostgreSQL: tsquery = websearch(text) || (websearch(prefix_group) && to_tsquery('<prefix>':*)).

    Without a prefix term, `text` is the whole query and the rest is None. With one, `text` holds the
    alternatives before the last, `prefix_group` the last alternative without its prefix word.
    """

    text: str
    prefix_group: str | None = None
    prefix: str | None = None


def websearch_parts(parsed: ParsedText) -> WebsearchParts:
    prefix = parsed.prefix_word
    if prefix is None:
        return WebsearchParts(parsed.render())
    head = ParsedText(parsed.groups[:-1]).render() if len(parsed.groups) > 1 else ""
    return WebsearchParts(head, _render_group(parsed.groups[-1][:-1]), prefix)


def tsquery_prefix_literal(word: str) -> str:
    """to_tsquery input matching lexemes that start with `word` (words are letters and digits only)."""
    return "'" + word.replace("'", "''") + "':*"


def _fts_term(term: Term) -> str:
    return '"' + " ".join(w.replace('"', '""') for w in term.words) + '"' + ("*" if term.prefix else "")


def _is_stop_word(term: Term) -> bool:
    return len(term.words) == 1 and not term.prefix and term.words[0] in STOP_WORDS


def fts5_expression(parsed: ParsedText) -> str:
    """The same query as an FTS5 MATCH expression. Every term is a quoted string, so no input is syntax."""
    alternatives = []
    for group in parsed.groups:
        positive = [t for t in group if not t.negated]
        positive = [t for t in positive if not _is_stop_word(t)] or positive
        negated = [t for t in group if t.negated and not _is_stop_word(t)]
        expr = " AND ".join(_fts_term(t) for t in positive)
        if negated:
            expr = f"({expr}) NOT ({' OR '.join(_fts_term(t) for t in negated)})"
        alternatives.append(f"({expr})")
    return " OR ".join(alternatives)


# ---------------------------------------------------------------------------------------------- the cursor


@dataclass(frozen=True, slots=True)
class SearchCursor:
    """Where the next page starts. Relevance: an offset. Newest and rating: the last row's sort key (keyset)."""

    fuzzy: bool
    offset: int = 0
    created_at: datetime | None = None
    rating: float | None = None
    rating_count: int | None = None
    id: uuid.UUID | None = None


def _micros(ts: datetime) -> int:
    if ts.tzinfo is None:  # SQLite hands back naive UTC
        ts = ts.replace(tzinfo=UTC)
    return (ts - _EPOCH) // _MICROSECOND


def encode_cursor(cursor: SearchCursor, sort: Sort, fingerprint: str) -> str:
    mode = "f" if cursor.fuzzy else "e"
    body: list[object] = [CANONICAL_VERSION, fingerprint, mode, _SORT_CODES[sort]]
    if sort == "relevance":
        body.append(cursor.offset)
    elif sort == "newest":
        assert cursor.created_at is not None
        assert cursor.id is not None
        body += [_micros(cursor.created_at), cursor.id.hex]
    else:
        assert cursor.rating is not None
        assert cursor.rating_count is not None
        assert cursor.id is not None
        body += [cursor.rating, cursor.rating_count, cursor.id.hex]
    return base64.urlsafe_b64encode(orjson.dumps(body)).rstrip(b"=").decode("ascii")


def _is_rating(value: object) -> bool:
    """An average of 1 to 5 stars (0 stands for "no rating yet" in the keyset order)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 5


def decode_cursor(token: str, sort: Sort, fingerprint: str) -> SearchCursor:
    """The cursor, if it was made by encode_cursor for this very search (same text, filters and sort)."""
    invalid = SearchQueryError("cursor is not valid", "cursor")
    if not token or len(token) > MAX_CURSOR_LENGTH:
        raise invalid
    try:
        body = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise invalid from exc
    if not (isinstance(body, list) and len(body) >= 5 and body[0] == CANONICAL_VERSION):
        raise invalid
    if body[1] != fingerprint or body[3] != _SORT_CODES[sort]:
        raise SearchQueryError("cursor belongs to another search", "cursor")
    if body[2] not in ("e", "f"):
        raise invalid
    fuzzy, rest = body[2] == "f", body[4:]
    # Every field is bounded before it reaches a statement (kit/cursor.py says why).
    try:
        if sort == "relevance" and len(rest) == 1:
            return SearchCursor(fuzzy, offset=bounded_int(rest[0], 0, MAX_OFFSET))
        if sort == "newest" and len(rest) == 2:
            return SearchCursor(fuzzy, created_at=timestamp_from_micros(rest[0]), id=uuid_from_hex(rest[1]))
        if sort == "rating" and len(rest) == 3 and _is_rating(rest[0]):
            return SearchCursor(
                fuzzy,
                rating=float(rest[0]),
                rating_count=bounded_int(rest[1], 0, MAX_INT32),
                id=uuid_from_hex(rest[2]),
            )
    except InvalidCursorError as exc:
        raise invalid from exc
    raise invalid


# ---------------------------------------------------------------------------------------------- the request


@dataclass(frozen=True, slots=True)
class SearchQuery:
    text: ParsedText
    cuisine: str | None = None
    tags: tuple[str, ...] = ()
    include_ingredients: tuple[str, ...] = ()
    exclude_ingredients: tuple[str, ...] = ()
    max_total_minutes: int | None = None
    min_rating: float | None = None
    sort: Sort = "relevance"
    limit: int = 20
    cursor: SearchCursor | None = None
    prefix: bool = False

    @property
    def display_text(self) -> str:
        """The normalised text, as analytics records it."""
        return self.text.render()

    def _identity(self) -> dict[str, object]:
        return {
            "v": CANONICAL_VERSION,
            "q": self.text.render(),
            "prefix": self.text.prefix_word,
            "cuisine": self.cuisine,
            "tags": list(self.tags),
            "include": list(self.include_ingredients),
            "exclude": list(self.exclude_ingredients),
            "max_total_minutes": self.max_total_minutes,
            "min_rating": self.min_rating,
            "sort": self.sort,
        }

    @property
    def fingerprint(self) -> str:
        """Names the search regardless of page: a cursor carries it, so it cannot be replayed on another search."""
        return stable_digest(self._identity(), size=6)

    def canonical(self) -> dict[str, object]:
        """Everything that decides the page's contents, in one canonical form: the cache key is built from this."""
        cursor = None if self.cursor is None else encode_cursor(self.cursor, self.sort, self.fingerprint)
        return {**self._identity(), "limit": self.limit, "cursor": cursor}

    def with_cursor(self, cursor: SearchCursor | None) -> SearchQuery:
        return SearchQuery(
            self.text,
            self.cuisine,
            self.tags,
            self.include_ingredients,
            self.exclude_ingredients,
            self.max_total_minutes,
            self.min_rating,
            self.sort,
            self.limit,
            cursor,
            self.prefix,
        )


def _names(values: Sequence[str] | None, param: str, max_length: int) -> tuple[str, ...]:
    """Lower-cased, trimmed, deduplicated, sorted; each value may itself be a comma-separated list."""
    names: set[str] = set()
    for value in values or ():
        for part in value.split(","):
            name = " ".join(part.split()).lower()
            if not name:
                continue
            if len(name) > max_length:
                raise SearchQueryError(f"{param} values are at most {max_length} characters", param)
            names.add(name)
    if len(names) > MAX_FILTER_VALUES:
        raise SearchQueryError(f"at most {MAX_FILTER_VALUES} values for {param}", param)
    return tuple(sorted(names))


def normalise(
    q: str,
    *,
    cuisine: str | None = None,
    tags: Sequence[str] | None = None,
    include_ingredients: Sequence[str] | None = None,
    exclude_ingredients: Sequence[str] | None = None,
    max_total_minutes: int | None = None,
    min_rating: float | None = None,
    sort: str = "relevance",
    limit: int = 20,
    cursor: str | None = None,
    prefix: bool = False,
) -> SearchQuery:
    """A client's search request in canonical form; SearchQueryError (naming the parameter) when it is unusable."""
    sort_order = next((s for s in SORTS if s == sort), None)
    if sort_order is None:
        raise SearchQueryError(f"sort must be one of {', '.join(SORTS)}", "sort")
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchQueryError(f"limit must be between 1 and {MAX_LIMIT}", "limit")
    if max_total_minutes is not None and max_total_minutes < 0:
        raise SearchQueryError("max_total_minutes must not be negative", "max_total_minutes")
    if min_rating is not None and not 0 <= min_rating <= 5:
        raise SearchQueryError("min_rating must be between 0 and 5", "min_rating")
    cuisine_name = " ".join((cuisine or "").split()).lower() or None
    if cuisine_name is not None and len(cuisine_name) > 50:
        raise SearchQueryError("cuisine is at most 50 characters", "cuisine")
    query = SearchQuery(
        text=parse_text(q, prefix=prefix),
        cuisine=cuisine_name,
        tags=_names(tags, "tag", 40),
        include_ingredients=_names(include_ingredients, "ingredient", MAX_NAME_LENGTH),
        exclude_ingredients=_names(exclude_ingredients, "exclude_ingredient", MAX_NAME_LENGTH),
        max_total_minutes=max_total_minutes,
        min_rating=None if min_rating is None else round(min_rating, 2),
        sort=sort_order,
        limit=limit,
        prefix=prefix,
    )
    if cursor is None:
        return query
    return query.with_cursor(decode_cursor(cursor, query.sort, query.fingerprint))


# ---------------------------------------------------------------------------------------------- the next page


@dataclass(frozen=True, slots=True)
class Hit:
    """A matching recipe with the values it sorts by."""

    id: uuid.UUID
    created_at: datetime
    rating: float
    rating_count: int


def next_cursor(query: SearchQuery, hits: Sequence[Hit], *, fuzzy: bool, has_more: bool) -> str | None:
    """The cursor of the page after `hits` (the page the query asked for), or None on the last page."""
    if not has_more or not hits:
        return None
    last = hits[-1]
    if query.sort == "relevance":
        offset = (query.cursor.offset if query.cursor is not None else 0) + len(hits)
        if offset >= MAX_OFFSET:
            return None
        cursor = SearchCursor(fuzzy, offset=offset)
    elif query.sort == "newest":
        cursor = SearchCursor(fuzzy, created_at=last.created_at, id=last.id)
    else:
        cursor = SearchCursor(fuzzy, rating=last.rating, rating_count=last.rating_count, id=last.id)
    return encode_cursor(cursor, query.sort, query.fingerprint)
