from __future__ import annotations

import pytest

from potluck.kit.fields import FieldSelectionError, Shape, parse_selection, project

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
