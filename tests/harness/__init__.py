"""Real servers on loopback for the test suite: PostgreSQL 15 (primary + streaming replicas) and Redis 7.

Plain process managers without pytest imports, so scripts can use them too::

    from tests.harness import PgCluster, RedisServer
"""

from ._util import HarnessError
from .postgres import PgCluster
from .redis import RedisServer

__all__ = ["HarnessError", "PgCluster", "RedisServer"]
