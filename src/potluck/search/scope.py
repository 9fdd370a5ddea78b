"""Which generations namespace a cached search page. Pure.

One generation for every search (`gen:search`) is emptied by every creation and title edit anywhere: in the load
test's mix that is every ~2 s, and the search hit rate stayed at 25-39% (docs/benchmarks.md, issue 15 part 13).
On PostgreSQL an exact match is namespaced by the generations of its query's **lexemes** instead: a recipe can enter
or leave the results of "butter chicken" only if its search vector holds 'butter' and 'chicken', so a write bumps
the generation of every lexeme of the recipe's vector before and after it (`search_scope_key`, a bucket of 4,096),
and a page reads the generations of one lexeme per alternative of its query (`scope_lexemes`): every match of an
alternative holds that lexeme, so whatever write moves a recipe into or out of the page bumps one of them.

What stays on `gen:search`: the typo fallback (its matches are titles like the words, not holding them), a
type-ahead alternative with no complete word (a prefix matches many lexemes), an alternative whose words are all
stop words, and SQLite (no lexemes: FTS5 tokenizes differently). Which writes bump what: recipe/relevance.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from potluck.search.query import ParsedText


def scope_lexemes(parsed: ParsedText, lexemes: Mapping[str, Sequence[str]]) -> list[str] | None:
    """The lexemes whose generations namespace the exact match of `parsed` (sorted, distinct), or None when some
    alternative has none: its matches need hold no particular lexeme, so only `gen:search` covers them.

    `lexemes`: each word's lexemes as PostgreSQL's `english` configuration makes them (none for a stop word). An
    alternative matches only recipes holding every lexeme of its positive, complete words (a negated word must be
    absent, a prefix word may be any lexeme it begins); of those, the longest (likely the rarest) is taken, ties
    by text, so every process picks the same."""
    chosen: set[str] = set()
    for group in parsed.groups:
        candidates = [
            lexeme
            for term in group
            if not term.negated and not term.prefix
            for word in term.words
            for lexeme in lexemes.get(word, ())
        ]
        if not candidates:
            return None
        chosen.add(max(candidates, key=lambda lexeme: (len(lexeme), lexeme)))
    return sorted(chosen)


def scope_words(parsed: ParsedText) -> list[str]:
    """The words whose lexemes `scope_lexemes` may need: every positive, complete word, in order."""
    words: dict[str, None] = {}
    for group in parsed.groups:
        for term in group:
            if not term.negated and not term.prefix:
                words.update(dict.fromkeys(term.words))
    return list(words)
