from __future__ import annotations

import os
import subprocess
import sys
import uuid

from potluck.kit.etag import etag_version, if_match_satisfied, if_none_match_hit, make_etag


def test_etag_carries_the_version_and_changes_with_it() -> None:
    rid = uuid.uuid4()
    assert etag_version(make_etag(rid, 7)) == 7
    assert make_etag(rid, 7) != make_etag(rid, 8)
    assert make_etag(rid, 7, "f=id") != make_etag(rid, 7, "f=title")


def test_etag_is_the_same_under_any_hash_seed() -> None:
    rid = "0192f0c2-0000-7000-8000-000000000001"
    code = f"from potluck.kit.etag import make_etag; print(make_etag({rid!r}, 3, 'x'))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("0", "1", "12345")
    }
    assert len(outs) == 1


def test_if_match() -> None:
    tag = make_etag("r", 4)
    assert if_match_satisfied(None, 4)
    assert if_match_satisfied(tag, 4)
    assert if_match_satisfied(f'"zzz", {tag}', 4)
    assert if_match_satisfied("*", 4)
    assert not if_match_satisfied(make_etag("r", 3), 4)
    assert not if_match_satisfied(f"W/{tag}", 4)  # If-Match uses strong comparison
    assert not if_match_satisfied('"garbage"', 4)


def test_if_none_match_uses_weak_comparison() -> None:
    tag = make_etag("r", 4)
    assert if_none_match_hit(tag, tag)
    assert if_none_match_hit(f"W/{tag}", tag)
    assert if_none_match_hit("*", tag)
    assert not if_none_match_hit(make_etag("r", 3), tag)
    assert not if_none_match_hit(None, tag)
