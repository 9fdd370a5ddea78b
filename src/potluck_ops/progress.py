"""What `potluck cluster` shows while it works: on stderr, a spinner per step, then a check mark or a cross."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from rich.console import Console

console = Console(stderr=True)


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    """A spinner while the step runs, then a check mark with its duration."""
    started = time.monotonic()
    try:
        with console.status(f"{title}…"):
            yield
    except BaseException:
        console.print(f"[red]✗[/red] {title} [dim]({time.monotonic() - started:.1f}s)[/dim]")
        raise
    console.print(f"[green]✓[/green] {title} [dim]({time.monotonic() - started:.1f}s)[/dim]")


def note(text: str) -> None:
    console.print(f"[yellow]note[/yellow]: {text}")
