"""The session types as the type checker sees them: a write session serves where a read is asked for, never the
reverse, down to a repository's write methods (db/session.py). Runs mypy on a small module written here."""

from __future__ import annotations

import re
from pathlib import Path

from mypy import api

SNIPPET = """
import uuid

from potluck.db.session import ReadSession, WriteSession
from potluck.recipe.repository import RecipeRepository
from potluck.user.service import UserService


async def reads_on_a_write_session(write: WriteSession, users: UserService) -> None:
    await users.get_me(write, uuid.uuid4())
    await RecipeRepository(write).bump_version(uuid.uuid4())


async def a_repository_write_on_a_read_session(read: ReadSession) -> None:
    await RecipeRepository(read).bump_version(uuid.uuid4())  # refused


async def a_service_write_on_a_read_session(read: ReadSession, users: UserService) -> None:
    await users.follow(read, uuid.uuid4(), uuid.uuid4())  # refused
"""


def test_the_checker_refuses_writes_through_a_read_session_and_only_those(tmp_path: Path) -> None:
    module = tmp_path / "sessions_snippet.py"
    module.write_text(SNIPPET)
    stdout, stderr, _status = api.run(
        ["--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"), str(module)]
    )
    flagged = sorted({int(m.group(1)) for m in re.finditer(r"sessions_snippet\.py:(\d+): error", stdout)})
    refused = [i for i, line in enumerate(SNIPPET.splitlines(), start=1) if line.endswith("# refused")]
    assert flagged == refused, stdout + stderr
