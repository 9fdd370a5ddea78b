"""The edge request log's counting (views, requests by route family and handling) and where shipping resumes."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from potluck.config import EdgeSettings
from potluck.stats.edge_views import (
    ROTATED_QUIET_SECONDS,
    LogPosition,
    count_edge_log,
    count_rejections,
    rotation_due,
    route_family,
    where_to_read,
)


def test_counts_complete_lines_and_leaves_a_partial_one() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    lines = [f"hit GET /api/v1/recipes/{a}", f"hit GET /api/v1/recipes/{b}", f"hit GET /api/v1/recipes/{a}"]
    chunk = ("\n".join(lines) + f"\nhit GET /api/v1/recipes/{b}").encode()
    counts = count_edge_log(chunk)
    assert counts.views == {a: 2, b: 1}
    assert counts.requests == Counter({("recipe_detail", "hit"): 3})
    assert counts.consumed == chunk.rfind(b"\n") + 1


def test_only_get_hits_of_a_recipe_document_are_views_every_read_is_a_request() -> None:
    a = uuid.uuid4()
    lines = [
        f"miss GET /api/v1/recipes/{a}",
        f"pass GET /api/v1/recipes/{a}",
        f"hit HEAD /api/v1/recipes/{a}",
        f"hit GET /api/v1/recipes/{a}/rating",
        f"hit GET /api/v1/recipes/{'z' * 36}",
        "hit GET /api/v1/recipes",
        "miss GET /api/v1/search",
        "hit GET /api/v1/trending",
        f"hit GET /api/v1/users/{a}",
        "synth GET /healthz",
        "",
        "garbage",
        f"hit GET /api/v1/recipes/{a}",
    ]
    chunk = ("\n".join(lines) + "\n").encode()
    counts = count_edge_log(chunk)
    assert counts.views == {a: 1}
    assert counts.requests == Counter(
        {
            ("recipe_detail", "miss"): 1,
            ("recipe_detail", "pass"): 1,
            ("recipe_detail", "hit"): 2,
            ("other", "hit"): 2,  # a rating path, and an id that is not one
            ("recipe_list", "hit"): 1,
            ("search", "miss"): 1,
            ("trending", "hit"): 1,
            ("profile", "hit"): 1,
            ("other", "synth"): 1,
        }
    )
    assert counts.consumed == len(chunk)


def test_nothing_complete_consumes_nothing() -> None:
    counts = count_edge_log(b"hit GET /api/v1/recipes/abc")
    assert (counts.views, counts.requests, counts.consumed) == ({}, Counter(), 0)


def test_route_families() -> None:
    assert route_family(b"/api/v1/search/trending") == "search"
    assert route_family(b"/api/v1/recipes/") == "recipe_list"
    assert route_family(b"/api/v1/users/me") == "other"


def test_positions_round_trip_and_read_old_plain_offsets() -> None:
    assert LogPosition.decode(LogPosition(42, 7).encode()) == LogPosition(42, 7)
    assert LogPosition.decode(b"123") == LogPosition(None, 123)
    assert LogPosition.decode(None) == LogPosition(None, 0)
    assert LogPosition.decode("x:y") == LogPosition(None, 0)


def _stat(inode: int, size: int, mtime: float = 0.0) -> os.stat_result:
    return os.stat_result((0o100644, inode, 0, 1, 0, 0, size, 0, mtime, 0))


NOW = 1_000.0


def test_the_same_file_resumes_at_its_offset_or_from_zero_when_truncated() -> None:
    assert where_to_read(LogPosition(5, 100), _stat(5, 300), None, NOW) == (False, LogPosition(5, 100))
    assert where_to_read(LogPosition(5, 100), _stat(5, 40), None, NOW) == (False, LogPosition(5, 0))
    assert where_to_read(LogPosition(None, 100), _stat(5, 300), None, NOW) == (False, LogPosition(5, 100))


def test_a_rotated_file_is_finished_before_the_new_one_starts() -> None:
    shipped = LogPosition(5, 100)
    assert where_to_read(shipped, _stat(9, 30), _stat(5, 160), NOW) == (True, shipped)
    # Finished (or gone): the new file from its start.
    assert where_to_read(shipped, _stat(9, 30), _stat(5, 100), NOW) == (False, LogPosition(9, 0))
    assert where_to_read(shipped, _stat(9, 30), None, NOW) == (False, LogPosition(9, 0))
    assert where_to_read(shipped, None, _stat(5, 160), NOW) == (True, shipped)
    assert where_to_read(shipped, None, None, NOW) is None


def test_a_rotated_file_written_moments_ago_is_not_left_yet() -> None:
    """nginx's workers reopen after their master: one may still append to `.1` just after the rename."""
    shipped = LogPosition(5, 100)
    just_written = _stat(5, 100, mtime=NOW - ROTATED_QUIET_SECONDS / 2)
    assert where_to_read(shipped, _stat(9, 30), just_written, NOW) is None
    quiet = _stat(5, 100, mtime=NOW - ROTATED_QUIET_SECONDS)
    assert where_to_read(shipped, _stat(9, 30), quiet, NOW) == (False, LogPosition(9, 0))
    more = _stat(5, 140, mtime=NOW)  # what a late writer added is read at once
    assert where_to_read(shipped, _stat(9, 30), more, NOW) == (True, shipped)


def test_gateway_refusals_counted_by_limit() -> None:
    lines = [
        '2026/12/05 19:40:01 [warn] 7#7: *1 limiting requests, excess: 3.120 by zone "per_address", client: 1.2.3.4',
        '2026/12/05 19:40:01 [warn] 7#7: *2 limiting requests, excess: 2.000 by zone "per_token", client: 1.2.3.4',
        '2026/12/05 19:40:01 [warn] 7#7: *3 limiting connections by zone "conn_per_address", client: 1.2.3.4',
        '2026/12/05 19:40:01 [warn] 7#7: *4 limiting requests, excess: 3.500 by zone "per_address", client: 1.2.3.5',
        "2026/12/05 19:40:02 [error] 7#7: *5 connect() failed (111: Connection refused) while connecting to upstream",
        '2026/12/05 19:40:03 [warn] 7#7: *6 limiting requests, excess: 9.000 by zone "per_addr',
    ]
    chunk = "\n".join(lines).encode()
    counts = count_rejections(chunk)
    assert counts.by_limit == Counter({"per_address": 2, "per_token": 1, "conn_per_address": 1})
    assert counts.consumed == chunk.rfind(b"\n") + 1


def test_a_log_rotates_past_a_bound_only_once_its_previous_generation_is_shipped() -> None:
    full = _stat(7, 5000)
    on_it, behind = LogPosition(7, 4000), LogPosition(6, 100)  # shipping the current file / still finishing `.1`
    assert rotation_due(on_it, full, 0, 4096, 0)
    assert not rotation_due(behind, full, 0, 4096, 0)  # renaming now would replace an unshipped `.1`
    assert not rotation_due(LogPosition(None, 0), full, 0, 4096, 0)  # never shipped
    assert not rotation_due(on_it, _stat(7, 4095), 0, 4096, 0)
    assert not rotation_due(on_it, full, 10**9, 0, 0)  # both bounds off
    # By age: only with something in it.
    assert rotation_due(on_it, full, 3600, 0, 3600)
    assert not rotation_due(on_it, full, 3599, 0, 3600)
    assert not rotation_due(LogPosition(7, 0), _stat(7, 0), 10**9, 1, 3600)
    assert not rotation_due(on_it, None, 10**9, 1, 1)


def test_rotation_names_one_writer_per_log_or_none() -> None:
    with pytest.raises(ValidationError, match="view_log_writers"):
        EdgeSettings(view_logs=[Path("a.hits"), Path("b.hits")], view_log_writers=[Path("a.pid")])
    assert EdgeSettings(view_logs=[Path("a.hits")]).view_log_writers == []  # the worker never rotates then
    with pytest.raises(ValidationError, match="gateway_log_writers"):
        EdgeSettings(gateway_logs=[Path("error.log")], gateway_log_writers=[Path("a.pid"), Path("b.pid")])
    assert EdgeSettings(gateway_logs=[Path("error.log")]).gateway_log_writers == []
