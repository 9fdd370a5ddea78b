"""`potluck cluster down` stops each edge node with its varnishncsa (a daemon, its pid file beside the node's)."""

from __future__ import annotations

import os
from pathlib import Path

from potluck_ops.layout import Layout, find_repo_root
from potluck_ops.ports import pick_free_ports
from potluck_ops.processes import pid_alive, read_pid
from potluck_ops.teardown import stop_all
from potluck_ops.varnish import NCSA_SUFFIX, start_hit_log, start_varnish
from tests.support.eventually import eventually_sync

REPO = find_repo_root()


def test_cluster_down_stops_every_edge_nodes_varnishncsa(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "state", REPO)
    layout.edge.mkdir(parents=True)
    port, backend = pick_free_ports(2)
    varnishd = start_varnish(REPO / "deploy", layout.edge, "edge-1", port, [backend], os.environ)
    ncsa_pid_file = layout.edge / f"edge-1{NCSA_SUFFIX}.pid"
    try:
        start_hit_log(layout.edge, "edge-1", os.environ).wait(10)
        ncsa = eventually_sync(lambda: read_pid(ncsa_pid_file), 10)
        assert pid_alive(ncsa)
        stopped = stop_all(layout, quiet=True)
        assert "edge-1" in stopped
        assert eventually_sync(lambda: not pid_alive(ncsa), 10), "varnishncsa outlived cluster down"
        varnishd.wait(10)
    finally:
        if varnishd.poll() is None:
            varnishd.kill()
            varnishd.wait(10)
        leftover = read_pid(ncsa_pid_file)
        if leftover is not None and pid_alive(leftover):
            os.kill(leftover, 9)
