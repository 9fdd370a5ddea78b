"""Which lexemes namespace an exact match's cached page (search/scope.py): one per alternative, every match of the
alternative holds it; none (so `gen:search`) when an alternative need hold no particular lexeme."""

from __future__ import annotations

from potluck.search.query import parse_text
from potluck.search.scope import scope_lexemes, scope_words

# As PostgreSQL's `english` configuration makes them (stop words have none).
LEXEMES = {
    "butter": ["butter"],
    "chicken": ["chicken"],
    "chickens": ["chicken"],
    "the": [],
    "and": [],
    "olive": ["oliv"],
    "oil": ["oil"],
    "soup": ["soup"],
    "stew": ["stew"],
    "spicy": ["spici"],
}


def test_one_lexeme_per_alternative_the_longest() -> None:
    assert scope_lexemes(parse_text("butter chicken"), LEXEMES) == ["chicken"]
    assert scope_lexemes(parse_text("chickens"), LEXEMES) == ["chicken"]
    assert scope_lexemes(parse_text("soup or stew"), LEXEMES) == ["soup", "stew"]
    assert scope_lexemes(parse_text('"olive oil" soup'), LEXEMES) == ["soup"]  # 4 letters each: by text


def test_negated_words_and_stop_words_are_no_scope() -> None:
    assert scope_lexemes(parse_text("soup -chicken"), LEXEMES) == ["soup"]
    assert scope_lexemes(parse_text("the soup"), LEXEMES) == ["soup"]
    assert scope_lexemes(parse_text("the and"), LEXEMES) is None  # nothing a match must hold
    assert scope_lexemes(parse_text("soup or the"), LEXEMES) is None


def test_type_ahead_needs_a_complete_word_in_its_alternative() -> None:
    assert scope_lexemes(parse_text("chick", prefix=True), LEXEMES) is None
    assert scope_lexemes(parse_text("spicy chick", prefix=True), LEXEMES) == ["spici"]
    assert scope_lexemes(parse_text("soup or chick", prefix=True), LEXEMES) is None
    assert scope_words(parse_text("spicy chick", prefix=True)) == ["spicy"]


def test_words_without_known_lexemes_are_no_scope() -> None:
    assert scope_lexemes(parse_text("quinoa"), LEXEMES) is None
    assert scope_words(parse_text("soup -chicken or stew")) == ["soup", "stew"]
