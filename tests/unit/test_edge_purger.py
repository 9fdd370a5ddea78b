import logging

from potluck.cache.edge import _QUIET


def _record(method: str) -> logging.LogRecord:
    args = (method, "http://127.0.0.1:6081/", "HTTP/1.1", 200, "OK")
    return logging.LogRecord("httpx", logging.INFO, __file__, 1, 'HTTP Request: %s %s "%s %d %s"', args, None)


def test_purge_and_heartbeat_requests_are_not_logged_other_requests_are() -> None:
    assert _QUIET.filter(_record("PURGE")) is False
    assert _QUIET.filter(_record("GET")) is True
