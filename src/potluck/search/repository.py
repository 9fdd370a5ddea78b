"""All search SQL: PostgreSQL full-text search (tsvector + GIN, pg_trgm for typos) or SQLite FTS5.

The schema objects come from migration 0002 and are not on the ORM model: `recipe.search_vector` and the
`potluck_unaccent()` wrapper on PostgreSQL, `recipe_fts` over `recipe_search_doc` on SQLite.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    bindparam,
    case,
    column,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import TSQUERY, TSVECTOR

from potluck.db.session import Rows
from potluck.recipe.models import Ingredient, Recipe, RecipeIngredient, RecipeTag, Tag
from potluck.recipe.repository import visible_to
from potluck.search.query import Hit, SearchQuery, fts5_expression, tsquery_prefix_literal, websearch_parts

# PostgreSQL
SEARCH_VECTOR = literal_column("recipe.search_vector", TSVECTOR)
ENGLISH: ColumnElement[Any] = literal_column("'english'::regconfig")
SIMPLE: ColumnElement[Any] = literal_column("'simple'::regconfig")
# word_similarity(query, title) from this on is a typo match ("chiken" vs "chicken ..." is 0.5); lower would
# let the index hand over far more candidates to recheck (0.4 doubles the fallback's cost on 100k recipes).
WORD_SIMILARITY_THRESHOLD = 0.45
# ts_rank_cd's weights for D, C, B, A: ingredient names (C) 0.2, description (B) 0.4, title (A) 1.0.
RANK_WEIGHTS = "{0.1, 0.2, 0.4, 1.0}"

# SQLite
recipe_fts = table("recipe_fts", column("rowid"))
recipe_search_doc = table("recipe_search_doc", column("doc_id"), column("recipe_id"))
FTS_TABLE: ColumnElement[Any] = literal_column("recipe_fts")
# bm25() column weights for title, description, ingredients: the same proportions as RANK_WEIGHTS.
BM25_WEIGHTS = (10.0, 4.0, 2.0)
# A LIKE on words shorter than this would match nearly every title.
MIN_FALLBACK_WORD = 3

# What websearch_to_tsquery makes of each word on its own: the lexemes a match must hold (search/scope.py).
_WORD_LEXEMES = text(
    "SELECT w.word, tsvector_to_array(to_tsvector('english'::regconfig, potluck_unaccent(w.word))) AS lexemes "
    "FROM unnest(CAST(:words AS text[])) AS w(word)"
)

RATING_KEY = func.coalesce(Recipe.rating_avg, 0.0)
# id, created_at, rating (0 when unrated), rating_count: what a Hit holds.
HitSelect = Select[uuid.UUID, datetime, float, int]


class SearchRepository:
    def __init__(self, session: Rows) -> None:
        self.session = session

    @property
    def dialect(self) -> str:
        return self.session.dialect_name

    async def search(self, query: SearchQuery, viewer_id: uuid.UUID | None, *, fuzzy: bool, limit: int) -> list[Hit]:
        """Up to `limit` matches after `query.cursor`, in the query's order, visible to `viewer_id`.

        `fuzzy`: the typo-tolerant fallback (pg_trgm word similarity on the title; a LIKE per word on SQLite)
        instead of the full-text match.
        """
        postgres = self.dialect == "postgresql"
        if fuzzy:
            if postgres:
                # For the connection, not a transaction: reads run without one (autocommit), and the value is the
                # same for every search, so a pooled connection that keeps it is set as the next search wants it.
                await self.session.rows(
                    select(func.set_config("pg_trgm.word_similarity_threshold", str(WORD_SIMILARITY_THRESHOLD), False))
                )
                stmt, relevance = self._pg_fuzzy(query)
            else:
                fallback = self._sqlite_fuzzy(query)
                if fallback is None:
                    return []
                stmt, relevance = fallback
        elif postgres:
            stmt, relevance = self._pg_match(query)
        else:
            stmt, relevance = self._sqlite_match(query)
        stmt = _filtered(stmt, query, viewer_id)
        stmt = _ordered(stmt, query, relevance).limit(limit)
        rows = await self.session.rows(stmt)
        return [Hit(row.id, row.created_at, float(row.rating), int(row.rating_count)) for row in rows]

    async def lexemes(self, words: Sequence[str]) -> dict[str, list[str]] | None:
        """Each word's lexemes as the search's `english` configuration makes them (a stop word has none), or None
        on SQLite, which has none to give (search/scope.py)."""
        if self.dialect != "postgresql":
            return None
        rows = await self.session.rows(_WORD_LEXEMES, {"words": list(words)})
        return {row.word: list(row.lexemes or ()) for row in rows}

    # --- PostgreSQL ---------------------------------------------------------------------------------------

    def _pg_tsquery(self, query: SearchQuery) -> ColumnElement[Any]:
        parts = websearch_parts(query.text)
        tsquery = _websearch(parts.text)
        if parts.prefix is not None:
            # The typed prefix as is ('simple': "so" of "soup" is no stop word there) or stemmed ('english':
            # "cherrie" of "cherries" reaches the lexeme "cherri").
            literal_prefix = func.potluck_unaccent(_inline(tsquery_prefix_literal(parts.prefix)))
            simple = func.to_tsquery(SIMPLE, literal_prefix, type_=TSQUERY)
            english = func.to_tsquery(ENGLISH, literal_prefix, type_=TSQUERY)
            # Folded at plan time; when both agree ("chick"), matching and ranking the same prefix twice would
            # double the cost of the broadest queries there are.
            prefix = case((simple == english, simple), else_=simple.op("||", return_type=TSQUERY)(english))
            last = _websearch(parts.prefix_group or "").op("&&", return_type=TSQUERY)(prefix)
            tsquery = tsquery.op("||", return_type=TSQUERY)(last)
        return tsquery

    def _pg_match(self, query: SearchQuery) -> tuple[HitSelect, ColumnElement[Any]]:
        tsquery = self._pg_tsquery(query)
        rank = func.ts_rank_cd(literal_column(f"'{RANK_WEIGHTS}'::float4[]"), SEARCH_VECTOR, tsquery)
        return _base().where(SEARCH_VECTOR.op("@@")(tsquery)), rank.desc()

    def _pg_fuzzy(self, query: SearchQuery) -> tuple[HitSelect, ColumnElement[Any]]:
        text = func.potluck_unaccent(_inline(" ".join(query.text.positive_words)))
        title = func.potluck_unaccent(func.lower(Recipe.title))
        # `title %> text` is word_similarity(text, title) >= threshold: the trigram index answers it.
        return _base().where(title.op("%>")(text)), func.word_similarity(text, title).desc()

    # --- SQLite ---------------------------------------------------------------------------------------------

    def _sqlite_match(self, query: SearchQuery) -> tuple[HitSelect, ColumnElement[Any]]:
        rank = func.bm25(FTS_TABLE, *BM25_WEIGHTS)
        stmt = (
            select(Recipe.id, Recipe.created_at, RATING_KEY.label("rating"), Recipe.rating_count)
            .select_from(recipe_fts)
            .join(recipe_search_doc, recipe_search_doc.c.doc_id == recipe_fts.c.rowid)
            .join(Recipe.__table__, Recipe.id == recipe_search_doc.c.recipe_id)
            .where(FTS_TABLE.op("MATCH")(bindparam("fts_query", fts5_expression(query.text))))
        )
        return stmt, rank.asc()

    def _sqlite_fuzzy(self, query: SearchQuery) -> tuple[HitSelect, ColumnElement[Any]] | None:
        words = [w for w in query.text.positive_words if len(w) >= MIN_FALLBACK_WORD]
        if not words:
            return None
        # Words are letters and digits only: no LIKE wildcards to escape.
        matches = [Recipe.title.like(f"%{w}%") for w in words]
        matched = sum((case((m, 1), else_=0) for m in matches), literal(0))
        return _base().where(or_(*matches)), matched.desc()


def _inline(value: str) -> ColumnElement[Any]:
    """The search text as a literal in the SQL, not a parameter: the planner then folds the tsquery into a
    constant (computed once, not per ranked row, whatever plan-cache mode a prepared statement lands in) and
    estimates its selectivity from the column's statistics, so a rare word and a common one get different plans.
    Safe by construction: the text is our own rendering of letters, digits, spaces and `"-'*:`, and SQLAlchemy
    quotes it as a string literal."""
    return literal(value, literal_execute=True)


def _websearch(text: str) -> ColumnElement[Any]:
    return func.websearch_to_tsquery(ENGLISH, func.potluck_unaccent(_inline(text)), type_=TSQUERY)


def _base() -> HitSelect:
    return select(Recipe.id, Recipe.created_at, RATING_KEY.label("rating"), Recipe.rating_count)


def _filtered(stmt: HitSelect, query: SearchQuery, viewer_id: uuid.UUID | None) -> HitSelect:
    stmt = stmt.where(visible_to(viewer_id))
    if query.cuisine is not None:
        # The API stores cuisines lower-cased, the seeder capitalised: compare case-insensitively. The full-text
        # match drives these plans, so losing idx_recipes_cuisine_rating here costs nothing.
        stmt = stmt.where(func.lower(Recipe.cuisine) == query.cuisine)
    if query.max_total_minutes is not None:
        stmt = stmt.where(Recipe.prep_minutes + Recipe.cook_minutes <= query.max_total_minutes)
    if query.min_rating is not None:
        stmt = stmt.where(Recipe.rating_avg >= query.min_rating)
    # Names resolve to ids once (uncorrelated subqueries), so each candidate costs one probe of
    # pk_recipe_tag or idx_recipe_ingredients instead of a join per row.
    for tag in query.tags:
        tag_id = select(Tag.id).where(Tag.name == tag).scalar_subquery()
        stmt = stmt.where(exists().where(RecipeTag.recipe_id == Recipe.id, RecipeTag.tag_id == tag_id))
    for name in query.include_ingredients:
        ingredient_id = select(Ingredient.id).where(Ingredient.name == name).scalar_subquery()
        stmt = stmt.where(_has_ingredient(RecipeIngredient.ingredient_id == ingredient_id))
    if query.exclude_ingredients:
        excluded = select(Ingredient.id).where(Ingredient.name.in_(query.exclude_ingredients))
        stmt = stmt.where(~_has_ingredient(RecipeIngredient.ingredient_id.in_(excluded)))
    return stmt


def _has_ingredient(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(RecipeIngredient.recipe_id == Recipe.id, condition)


def _ordered(stmt: HitSelect, query: SearchQuery, relevance: ColumnElement[Any]) -> HitSelect:
    cursor = query.cursor
    if query.sort == "newest":
        if cursor is not None:
            stmt = stmt.where(tuple_(Recipe.created_at, Recipe.id) < tuple_(cursor.created_at, cursor.id))
        return stmt.order_by(Recipe.created_at.desc(), Recipe.id.desc())
    if query.sort == "rating":
        if cursor is not None:
            stmt = stmt.where(
                tuple_(RATING_KEY, Recipe.rating_count, Recipe.id)
                < tuple_(literal(cursor.rating, Float), cursor.rating_count, cursor.id)
            )
        return stmt.order_by(RATING_KEY.desc(), Recipe.rating_count.desc(), Recipe.id.desc())
    # Relevance: ranks are floats recomputed per query, so pages are addressed by offset (see docs/search.md).
    stmt = stmt.order_by(relevance, Recipe.id.desc())
    return stmt.offset(cursor.offset) if cursor is not None and cursor.offset else stmt
