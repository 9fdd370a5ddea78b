from __future__ import annotations

import orjson
import pytest

from potluck.kit.fields import FieldSelectionError, Projections, Shape, parse_selection, project

SHAPE = Shape(
    light=frozenset({"id", "title", "rating", "image_url", "author"}),
    heavy=frozenset({"ingredients", "steps"}),
    nested={"author": frozenset({"id", "username"})},
)
DOC = {
    "id": 1,
    "title": "Soup",
    "rating": 4.5,
    "image_url": None,
    "author": {"id": 7, "username": "ann"},
    "ingredients": ["salt"],
    "steps": ["boil"],
}


def test_no_parameters_give_light_fields_and_default_parts() -> None:
    sel = parse_selection(None, None, SHAPE, default_include={"steps"})
    assert project(DOC, sel, SHAPE) == {k: v for k, v in DOC.items() if k != "ingredients"}


def test_fields_pick_top_level_and_nested() -> None:
    sel = parse_selection("id,title,author.username", None, SHAPE)
    assert project(DOC, sel, SHAPE) == {"id": 1, "title": "Soup", "author": {"username": "ann"}}


def test_whole_object_wins_over_its_subfield() -> None:
    sel = parse_selection("author.username,author", None, SHAPE)
    assert project(DOC, sel, SHAPE) == {"author": {"id": 7, "username": "ann"}}


def test_heavy_part_named_in_fields_is_included() -> None:
    sel = parse_selection("id,ingredients", None, SHAPE)
    assert project(DOC, sel, SHAPE) == {"id": 1, "ingredients": ["salt"]}


def test_include_adds_heavy_parts_and_empty_include_removes_defaults() -> None:
    sel = parse_selection(None, "ingredients", SHAPE, default_include={"steps"})
    assert set(project(DOC, sel, SHAPE)) == {"id", "title", "rating", "image_url", "author", "ingredients"}
    sel = parse_selection(None, "", SHAPE, default_include={"steps"})
    assert "steps" not in project(DOC, sel, SHAPE)


@pytest.mark.parametrize(
    ("fields", "include", "bad"),
    [
        ("id,nope", None, "nope"),
        ("author.email", None, "author.email"),
        ("title.x", None, "title.x"),
        (None, "nutrition", "nutrition"),
    ],
)
def test_unknown_names_are_rejected_by_name(fields: str | None, include: str | None, bad: str) -> None:
    with pytest.raises(FieldSelectionError) as err:
        parse_selection(fields, include, SHAPE)
    assert err.value.name == bad
    assert bad in str(err.value)


def test_too_many_names_are_rejected() -> None:
    with pytest.raises(FieldSelectionError):
        parse_selection(",".join(["id"] * 61), None, SHAPE)


def test_key_is_canonical() -> None:
    a = parse_selection("title,id,author.username", "steps", SHAPE)
    b = parse_selection(" id , author.username,title", "steps", SHAPE)
    c = parse_selection("id,title", "steps", SHAPE)
    assert a.key == b.key
    assert a.key != c.key


@pytest.mark.parametrize("fields", ["", ",", " , ,"])
def test_empty_fields_is_an_error(fields: str) -> None:
    with pytest.raises(FieldSelectionError) as caught:
        parse_selection(fields, None, SHAPE)
    assert caught.value.name == "fields"


# --- Projections: a stored document's projection as JSON, kept per (bytes, selection) ---------------------------


@pytest.mark.parametrize(("fields", "include"), [(None, None), (None, "steps"), ("id,author.username", None)])
def test_projections_are_the_projection_serialized(fields: str | None, include: str | None) -> None:
    sel = parse_selection(fields, include, SHAPE)
    stored = orjson.dumps(DOC)
    page = orjson.dumps({"items": Projections(SHAPE).items([stored, stored], sel)})
    assert orjson.loads(page) == {"items": [project(DOC, sel, SHAPE)] * 2}


def test_a_document_is_projected_once_per_selection_and_the_memo_is_bounded() -> None:
    projections = Projections(SHAPE, entries=2)
    cards, slim = parse_selection(None, None, SHAPE), parse_selection("id", None, SHAPE)
    first, second = orjson.dumps(DOC), orjson.dumps({**DOC, "title": "Stew"})
    projections.items(
        [first, first, bytes(bytearray(first))], cards
    )  # equal bytes, another object: still one projection
    assert projections.projected == 1
    projections.items([first], slim)  # another selection of the same document
    assert projections.projected == 2
    [stew] = projections.items([second], cards)  # changed bytes: projected anew, never the old card
    assert orjson.loads(orjson.dumps(stew))["title"] == "Stew"
    assert projections.projected == 3
    projections.items([first], cards)  # the oldest of three entries was dropped (entries=2)
    assert projections.projected == 4


def test_the_memo_is_bounded_by_bytes() -> None:
    stored = orjson.dumps(DOC)
    projections = Projections(SHAPE, max_bytes=len(stored) * 2)
    cards = parse_selection(None, None, SHAPE)
    variants = [orjson.dumps({**DOC, "id": i}) for i in range(4)]
    projections.items(variants, cards)
    projections.items(variants[:1], cards)  # pushed out by the later ones: projected again
    assert projections.projected == 5
