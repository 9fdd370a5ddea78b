"""Free loopback ports for servers that choose their own."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

HOST = "127.0.0.1"
# Servers get ports from here up to the kernel's ephemeral range (see pick_free_ports).
_LOW_PORT = 10_000


def ephemeral_port_range() -> tuple[int, int] | None:
    """The kernel's range for the local ports of outgoing connections (Linux: 32768-60999 by default)."""
    try:
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return None
    return low, high


def _bind_zero_ports(count: int, avoided: set[int]) -> list[int]:
    ports: list[int] = []
    sockets: list[socket.socket] = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
            if port not in avoided:
                ports.append(port)
    finally:
        for sock in sockets:
            sock.close()
    return ports


def pick_free_ports(count: int, *, avoid: Iterable[int] = (), rng: random.Random | None = None) -> list[int]:
    """`count` distinct loopback ports that are free now, below the kernel's ephemeral range when it has room.

    Binding port 0 returns an ephemeral port, and the kernel also hands ephemeral ports to outgoing connections
    (a replica's walreceiver, psql, the API's pools): one of those can take the port between this pick and the
    server's own bind, and the server dies with "address already in use" (seen here: Redis after
    pg_basebackup). Below the range only servers that choose their port compete, and the bind check sees them.
    Falls back to binding port 0 where the range is unknown.
    """
    avoided = set(avoid)
    ports: list[int] = []
    span = ephemeral_port_range()
    if span is not None and span[0] - _LOW_PORT >= 1000:
        rng = rng or random.Random()
        for _ in range(200 * count):
            if len(ports) == count:
                break
            port = rng.randrange(_LOW_PORT, span[0])
            if port not in avoided and port not in ports and port_is_free(port):
                ports.append(port)
    return ports + _bind_zero_ports(count - len(ports), avoided | set(ports))


def free_port() -> int:
    """One loopback port that was free a moment ago (see pick_free_ports)."""
    return pick_free_ports(1)[0]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on HOST:port now (SO_REUSEADDR, as servers set it: TIME_WAIT is no obstacle)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _reusable(port: int) -> bool:
    span = ephemeral_port_range()
    return span is None or not span[0] <= port <= span[1]


def assign_ports(names: Sequence[str], previous: Mapping[str, int], *, avoid: Iterable[int] = ()) -> dict[str, int]:
    """A port per name: the previous run's when it is still free (stable URLs across down/up), else a new one."""
    taken = set(avoid)
    result: dict[str, int] = {}
    for name in names:
        port = previous.get(name)
        if port and port not in taken and _reusable(port) and port_is_free(port):
            result[name] = port
            taken.add(port)
    missing = [n for n in names if n not in result]
    for name, port in zip(missing, pick_free_ports(len(missing), avoid=taken), strict=True):
        result[name] = port
    return result
