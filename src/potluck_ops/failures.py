"""The one error of local operations, and the log tails it carries."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


class OpsError(RuntimeError):
    """A server could not be started, stopped or queried; the message says which, with output and log tails."""


def tail(path: Path, lines: int = 25) -> str:
    """The last `lines` lines of a text file, or a note when it cannot be read."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def failure(what: str, *, output: str = "", logs: Iterable[Path] = ()) -> OpsError:
    """An OpsError saying `what`, with the end of a command's output and the tails of the logs that exist."""
    parts = [what]
    if output.strip():
        parts.append("--- output ---\n" + "\n".join(output.strip().splitlines()[-40:]))
    for log in logs:
        if log.exists():
            parts.append(f"--- tail of {log} ---\n{tail(log)}")
    return OpsError("\n".join(parts))
