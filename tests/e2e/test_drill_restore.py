"""The restore drill, small: seeded by the app's CLI, backed up to the local S3 server, written to, destroyed,
restored to the latest point; every write before the RPO bound present and the snapshot's checksums equal."""

from __future__ import annotations

import shutil

import pytest

from potluck_ops.drills.restore import run_restore_drill

pytestmark = pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="needs pgbackrest (apt)")


def test_the_restore_drill_loses_nothing_before_the_rpo_bound() -> None:
    result = run_restore_drill(recipes=300, write_seconds=2, tail_seconds=1, rate=50, archive_timeout=3)
    assert result["checksums_match"]
    assert result["holes"] == 0
    assert result["missing_before_rpo_bound"] == 0
    assert result["rows_checked"] > 300
    assert result["ok"]
    # Writes in the segment that was never archived are the only ones lost.
    assert result["rpo_seconds"] < 3 + 5
    assert result["rto_seconds"] > 0
