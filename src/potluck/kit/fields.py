"""Field selection, as the design describes: `fields=id,title,author.username` and `include=ingredients,steps`.

Pure functions: parse the query parameters against what a resource offers, then project a document. And
`Projections`: documents stored as JSON bytes, projected once per (bytes, selection) and kept as JSON to splice
into a page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

import orjson

from potluck.kit.memo import BoundedMemo

MAX_FIELD_TOKENS = 60


class FieldSelectionError(ValueError):
    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True, slots=True)
class Shape:
    """What a resource offers: light fields always present, heavy parts only on request, nested sub-fields."""

    light: frozenset[str]
    heavy: frozenset[str]
    nested: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Selection:
    fields: frozenset[str] | None  # None: every light field
    nested: Mapping[str, frozenset[str]]  # a nested object trimmed to these sub-fields
    include: frozenset[str]

    @property
    def key(self) -> str:
        """A canonical spelling: equal selections give equal keys (for ETags and cache variants)."""
        fields = "*" if self.fields is None else ",".join(sorted(self.fields))
        nested = ";".join(f"{k}:{','.join(sorted(v))}" for k, v in sorted(self.nested.items()))
        return f"f={fields}|n={nested}|i={','.join(sorted(self.include))}"

    @property
    def is_everything(self) -> bool:
        return self.fields is None and not self.nested


def _tokens(raw: str | None, param: str) -> list[str]:
    if raw is None:
        return []
    tokens = [t.strip() for t in raw.split(",") if t.strip()]
    if len(tokens) > MAX_FIELD_TOKENS:
        raise FieldSelectionError(f"too many names in `{param}` (at most {MAX_FIELD_TOKENS})", param)
    return tokens


def parse_selection(
    fields: str | None, include: str | None, shape: Shape, *, default_include: Set[str] = frozenset()
) -> Selection:
    """Validate `fields` and `include` against `shape`; an unknown name raises FieldSelectionError naming it."""
    include_set: set[str] = set()
    for name in _tokens(include, "include"):
        if name not in shape.heavy:
            raise FieldSelectionError(f"unknown include `{name}`; choose from {', '.join(sorted(shape.heavy))}", name)
        include_set.add(name)

    if fields is None:
        chosen = include_set if include is not None else set(default_include)
        return Selection(fields=None, nested={}, include=frozenset(chosen))

    top: set[str] = set()
    nested: dict[str, set[str]] = {}
    names = _tokens(fields, "fields")
    if not names:
        # `fields=` naming nothing would answer `{}` for every item: a client's mistake, said so.
        raise FieldSelectionError("`fields` names no field; leave it out to get every field", "fields")
    for name in names:
        head, dot, sub = name.partition(".")
        if dot:
            if head not in shape.nested or sub not in shape.nested[head]:
                raise FieldSelectionError(f"unknown field `{name}`", name)
            nested.setdefault(head, set()).add(sub)
        elif name in shape.heavy:
            include_set.add(name)
        elif name in shape.light:
            top.add(name)
        else:
            raise FieldSelectionError(f"unknown field `{name}`", name)
    # Asking for all of `author` and for `author.username` means all of it.
    trimmed = {k: frozenset(v) for k, v in nested.items() if k not in top}
    return Selection(fields=frozenset(top | trimmed.keys()), nested=trimmed, include=frozenset(include_set))


def project(document: Mapping[str, Any], selection: Selection, shape: Shape) -> dict[str, Any]:
    """The document cut down to the selection; heavy parts appear only when included."""
    wanted = shape.light if selection.fields is None else selection.fields
    out = {k: v for k, v in document.items() if (k in wanted or k in selection.include)}
    for name, subfields in selection.nested.items():
        value = out.get(name)
        if isinstance(value, Mapping):
            out[name] = {k: v for k, v in value.items() if k in subfields}
    return out


PROJECTED_ENTRIES = 8192
PROJECTED_BYTES = 16 * 1024 * 1024


class Projections:
    """Stored JSON documents cut to a selection, as JSON to splice into a page (`orjson.Fragment`): the last
    `entries` distinct (document bytes, selection) pairs within `max_bytes` (the documents and their projections
    together) are kept, so a page of cached documents is a join of kept bytes rather than, per item, a parse, a
    projection and a serialization (~25 µs for a recipe; docs/benchmarks.md). Keyed by the document's bytes
    themselves, so it can never answer for a document that changed."""

    def __init__(self, shape: Shape, entries: int = PROJECTED_ENTRIES, max_bytes: int = PROJECTED_BYTES) -> None:
        self.shape = shape
        self.projected = 0  # documents actually parsed and projected (misses)
        self._memo: BoundedMemo[tuple[bytes, str], orjson.Fragment] = BoundedMemo(entries, max_bytes)

    def items(self, documents: Iterable[bytes], selection: Selection) -> list[orjson.Fragment]:
        """Each of `documents` projected to `selection`, in order."""
        spelling = selection.key
        out = []
        for document in documents:
            key = (document, spelling)
            found = self._memo.get(key)
            if found is None:
                found = self._project(key, document, selection)
            out.append(found)
        return out

    def _project(self, key: tuple[bytes, str], document: bytes, selection: Selection) -> orjson.Fragment:
        encoded = orjson.dumps(project(orjson.loads(document), selection, self.shape))
        self.projected += 1
        fragment = orjson.Fragment(encoded)
        self._memo.put(key, fragment, len(document) + len(encoded))
        return fragment
