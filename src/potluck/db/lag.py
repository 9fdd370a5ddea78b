"""Replication lag, from WAL positions: pure functions.

Lag in seconds is measured as "how long ago did the primary pass the position this replica has replayed",
using the primary's positions sampled over time. It is zero when the replica has replayed everything, however
idle the primary is (unlike now() - pg_last_xact_replay_timestamp(), which grows while the primary is idle).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


def parse_lsn(text: str) -> int:
    """'16/B374D848' -> its byte position."""
    high, _, low = text.partition("/")
    if not low:
        raise ValueError(f"not an LSN: {text!r}")
    return (int(high, 16) << 32) + int(low, 16)


def format_lsn(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


@dataclass
class PrimaryHistory:
    """Recent (time, primary WAL position) samples, oldest first."""

    max_samples: int = 240
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def record(self, now: float, lsn: int) -> None:
        if self.samples and self.samples[-1][1] == lsn:
            return  # idle primary: keep the time it first reached this position
        self.samples.append((now, lsn))
        while len(self.samples) > self.max_samples:
            self.samples.popleft()

    def lag_seconds(self, replayed: int, now: float) -> float:
        """Seconds since the primary first went past `replayed`; 0 when nothing is left to replay."""
        if not self.samples or replayed >= self.samples[-1][1]:
            return 0.0
        for at, lsn in self.samples:
            if lsn > replayed:
                return max(0.0, now - at)
        return 0.0  # unreachable: the last sample is past `replayed`

    @property
    def latest(self) -> int:
        return self.samples[-1][1] if self.samples else 0
