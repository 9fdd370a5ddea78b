"""Real servers on loopback for the test suite: PostgreSQL 15 (primary + streaming replicas) and Redis 7 (alone, or
under three Sentinels).

Plain process managers without pytest imports, so scripts can use them too. They start, probe and stop their
servers with potluck_ops, the package behind `potluck cluster`::

    from tests.harness import PgCluster, RedisServer
"""

from ._util import HarnessError
from .patroni import PatroniCluster
from .postgres import PgCluster
from .redis import RedisServer
from .sentinel import SentinelSet

__all__ = ["HarnessError", "PatroniCluster", "PgCluster", "RedisServer", "SentinelSet"]
