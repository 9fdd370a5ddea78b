"""Pure parts of the Patroni pieces: the rendered node config, /cluster summaries, the leader watcher's reading
of /cluster, and the refusal of a state dir from before Patroni."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from potluck.db.topology import members_of
from potluck_ops.bringup import BringUp, refuse_plain_state
from potluck_ops.failures import OpsError
from potluck_ops.layout import Layout, find_repo_root
from potluck_ops.patroni import TEMPLATE, PatroniNode, cluster_ready, render_config, summarize

CLUSTER = {
    "members": [
        {"name": "pg1", "role": "sync_standby", "state": "streaming", "host": "127.0.0.1", "port": 5433, "timeline": 2},
        {"name": "pg2", "role": "leader", "state": "running", "host": "127.0.0.1", "port": 5434, "timeline": 2},
        {"name": "pg3", "role": "replica", "state": "starting", "host": "127.0.0.1", "port": 5435},
    ]
}


def test_rendered_config_keeps_patroni_timing_rule_and_sync_mode(tmp_path: Path) -> None:
    node = PatroniNode("pg1", tmp_path / "pg1", 5433, 8008)
    template = (find_repo_root() / "deploy" / TEMPLATE).read_text()
    config = yaml.safe_load(render_config(template, node, etcd_hosts=["127.0.0.1:2379"], node_parameters={"a": 1}))
    dcs = config["bootstrap"]["dcs"]
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]
    assert dcs["synchronous_mode"] is True
    assert dcs["synchronous_mode_strict"] is False
    assert dcs["postgresql"]["use_pg_rewind"] is True
    assert dcs["postgresql"]["parameters"]["wal_log_hints"] == "on"
    assert config["postgresql"]["listen"] == "127.0.0.1:5433"
    assert config["postgresql"]["parameters"]["a"] == 1
    assert config["etcd3"]["hosts"] == "127.0.0.1:2379"


def test_summary_and_readiness() -> None:
    summary = summarize(CLUSTER)
    assert (summary["leader"], summary["timeline"], summary["sync_standby"]) == ("pg2", 2, "pg1")
    assert cluster_ready(summary, 1)
    assert not cluster_ready(summary, 2)  # pg3 is still starting
    assert summarize(None)["leader"] is None


def test_watcher_reads_running_replicas_only() -> None:
    members = members_of(CLUSTER)
    assert members.leader == "127.0.0.1:5434"
    assert members.timeline == 2
    assert members.replicas == {"127.0.0.1:5433": ("127.0.0.1", 5433)}


def test_a_state_dir_from_before_patroni_is_refused_with_what_to_do(tmp_path: Path) -> None:
    layout = Layout(tmp_path, find_repo_root())
    (layout.pg_data("primary")).mkdir(parents=True)
    (layout.pg_data("primary") / "PG_VERSION").write_text("15\n")
    state = BringUp(layout, api_count=1, replica_count=2, lb_port=8080, seed_args=None)
    with pytest.raises(OpsError, match=r"down --purge"):
        refuse_plain_state(state)


def test_each_node_archives_as_pg1_so_any_leader_can_push() -> None:
    from pathlib import Path

    from potluck_ops.pgbackrest import archive_parameters

    command = archive_parameters(Path("/b/pgbackrest.conf"), data_dir=Path("/pg/pg2/data"))["archive_command"]
    assert command == "pgbackrest --config=/b/pgbackrest.conf --stanza=main --pg1-path=/pg/pg2/data archive-push %p"
