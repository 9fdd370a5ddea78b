"""Local operations: real servers on one machine, for `potluck cluster` and the test harness alike.

`potluck cluster up|down|status` (cli.py) runs the full topology: a PostgreSQL 15 primary + streaming replicas,
the Redis cache and coordination instances, N API processes behind nginx, a Celery worker and beat. The test
harness (tests/harness) starts its throwaway PostgreSQL and Redis with the same pieces.

This package never imports `potluck`: it talks to the app only by running its CLI in child processes.
"""
