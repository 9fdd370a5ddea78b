import uuid

from potluck.stats.edge_views import count_views


def test_counts_complete_recipe_lines_and_leaves_a_partial_one() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    chunk = f"/api/v1/recipes/{a}\n/api/v1/recipes/{b}\n/api/v1/recipes/{a}\n/api/v1/recipes/{b}".encode()
    counts, consumed = count_views(chunk)
    assert counts == {a: 2, b: 1}
    assert consumed == chunk.rfind(b"\n") + 1


def test_other_paths_and_garbage_are_not_views() -> None:
    a = uuid.uuid4()
    chunk = f"/api/v1/recipes\n/api/v1/recipes/{a}/rating\n/api/v1/recipes/{'z' * 36}\n\n/api/v1/recipes/{a}\n"
    assert count_views(chunk.encode()) == ({a: 1}, len(chunk))


def test_nothing_complete_consumes_nothing() -> None:
    assert count_views(b"/api/v1/recipes/abc") == ({}, 0)
