"""One /metrics for every process behind one port: prometheus_client's multiprocess mode.

With PROMETHEUS_MULTIPROC_DIR set before a process makes its first metric, every counter, histogram and gauge
keeps its value in a file of that directory (one per process and kind); a scrape merges the files of every
process: counters and histograms are summed, each gauge is combined by its `multiprocess_mode` (in-flight and
pool gauges are summed over live processes, replication lag is the live maximum, values read from a shared
source take the most recent reading). `potluck serve --workers N` turns it on (`server_directory`); so does
`potluck worker` for its pool when it serves metrics. See https://prometheus.github.io/client_python/multiprocess/.

What the files cannot hold: collectors that read their values at scrape time. Redis INFO is the same from any
process, so the answering process serves it (health.py). Pool use differs per process, so in this mode
`DbPoolCollector` writes it to gauges instead. Gauges of a dead process (`live*` modes) leave the merge when it
shuts down (`mark_dead`) or, if it was killed, at the next scrape (`reap_dead`); its counters stay, so totals
never go backwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

logger = logging.getLogger("potluck.observability.multiprocess")

ENV = "PROMETHEUS_MULTIPROC_DIR"
# gauge_livesum_1234.db: the per-process files of gauges that only count while their process lives.
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")
# Every file prometheus_client writes: counter_1234.db, histogram_1234.db, gauge_livesum_1234.db, ...
_METRICS_FILE = re.compile(r"(counter|histogram|summary|gauge_[a-z]+)_\d+\.db")


def directory() -> Path | None:
    """The directory this process's metrics live in, or None in single-process mode (the default, and tests).

    On only when the metric values themselves are file-backed: the variable set after prometheus_client chose
    its value class would leave the files empty, so it does not count.
    """
    path = os.environ.get(ENV)
    if not path or not getattr(values.ValueClass, "_multiprocess", False):
        return None
    return Path(path)


def enable(path: Path) -> Path:
    """Create and empty `path`, and put this process and every process it starts in multiprocess mode.

    Call it before the first metric is made (and before starting worker processes): metrics made earlier keep
    their values in memory. Only prometheus_client's own files are removed; a directory holding any other `.db`
    file (a database, say) is refused: the merge would read it and every scrape would fail.
    """
    path.mkdir(parents=True, exist_ok=True)
    foreign = sorted(p.name for p in path.glob("*.db") if not _METRICS_FILE.fullmatch(p.name))
    if foreign:
        raise ValueError(f"{path} holds other .db files ({', '.join(foreign[:3])}): give metrics their own directory")
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[ENV] = str(path)
    if not getattr(values.ValueClass, "_multiprocess", False):
        # prometheus_client reads the variable once, at import (ours is earlier, via the CLI); the value class
        # is the module attribute its metrics look up when they are made ("retain this import style").
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return path


@contextlib.contextmanager
def server_directory(configured: Path | None, *, processes: int) -> Iterator[Path | None]:
    """Multiprocess mode for one server (`potluck serve`, `potluck worker`) while the block runs.

    The directory is `configured` (settings.observability.multiprocess_dir), else PROMETHEUS_MULTIPROC_DIR,
    else, when there are several processes, a temporary one removed at the end; with one process and nothing
    configured the mode stays off (yields None). The environment and the value class are restored at the end.
    """
    from_env = os.environ.get(ENV) or None
    chosen = configured or (Path(from_env) if from_env else None)
    temporary = chosen is None and processes > 1
    if temporary:
        chosen = Path(tempfile.mkdtemp(prefix="potluck-metrics-"))
    if chosen is None:
        yield None
        return
    value_class = values.ValueClass
    try:
        yield enable(chosen)
    finally:
        values.ValueClass = value_class
        if from_env is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = from_env
        if temporary:
            shutil.rmtree(chosen, ignore_errors=True)


def mark_dead(pid: int | None = None) -> None:
    """Process `pid` (default: this one) is leaving: its live gauges stop counting; its counters stay."""
    path = directory()
    if path is None:
        return
    _mark_dead(pid if pid is not None else os.getpid(), path)


def reap_dead(path: Path) -> list[int]:
    """Mark dead every process whose live-gauge files are in `path` and that no longer runs (it was killed)."""
    pids = {int(m.group(1)) for name in os.listdir(path) if (m := _LIVE_GAUGE_FILE.fullmatch(name))}
    dead = sorted(pid for pid in pids if not _alive(pid))
    for pid in dead:
        _mark_dead(pid, path)
    if dead:
        logger.info("metrics.processes_reaped", extra={"pids": dead})
    return dead


def _mark_dead(pid: int, path: Path) -> None:
    # Two processes may reap the same pid at once: the second finds the files gone.
    with contextlib.suppress(FileNotFoundError):
        mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process has the pid now: not ours, but not provably gone either
        return True
    # A killed worker stays a zombie until its supervisor collects it: dead already, as far as metrics go.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no procfs (not Linux), or it just went
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class MergedCollector(Collector):
    """Every process's metrics from the files in `path`, merged; the files of killed processes reaped first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._merge = MultiProcessCollector(None, path=str(path))  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        reap_dead(self.path)
        metrics: Iterable[Metric] = self._merge.collect()  # type: ignore[no-untyped-call]
        return metrics


def exposition_registry(path: Path, collectors: Iterable[Collector] = ()) -> CollectorRegistry:
    """A registry for scrapes: the merged files of `path`, plus `collectors` (global values, read here)."""
    registry = CollectorRegistry()
    registry.register(MergedCollector(path))
    for collector in collectors:
        registry.register(collector)
    return registry
