"""The rendered edge and gateway configs: Varnish compiles the VCL, nginx accepts the config, limits come from env."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from potluck_ops.nginx import MAX_CONNECTIONS, GatewayLimits, render_nginx_conf
from potluck_ops.varnish import render_vcl

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.skipif(shutil.which("varnishd") is None, reason="varnish is not installed")
def test_the_vcl_compiles_and_names_every_api_process(tmp_path: Path) -> None:
    vcl = render_vcl((DEPLOY / "varnish" / "potluck.vcl.template").read_text(), node_name="e1", api_ports=[7001, 7002])
    assert "api.add_backend(api_7001);" in vcl
    assert "api.add_backend(api_7002);" in vcl
    path = tmp_path / "e1.vcl"
    path.write_text(vcl)
    args = ["varnishd", "-C", "-j", "none", "-f", str(path), "-n", str(tmp_path / "n")]
    done = subprocess.run(args, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def test_nginx_accepts_the_config_with_the_edge_and_the_limits(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    limits = GatewayLimits.from_env(
        {"POTLUCK_GATEWAY__ADDRESS_RATE": "7", "POTLUCK_GATEWAY__TRUSTED_PROXIES": "10.0.0.1, 10.0.0.2"}
    )
    assert (limits.address_rate, limits.trusted_proxies) == (7, ("10.0.0.1", "10.0.0.2"))
    template = (DEPLOY / "nginx" / "nginx.conf.template").read_text()
    conf = render_nginx_conf(
        template, nginx_dir=tmp_path, lb_port=18999, api_ports=[7001, 7002], edge_ports=[7101], limits=limits
    )
    assert "rate=7r/s" in conf
    assert "set_real_ip_from 10.0.0.2;" in conf
    edge_block = conf.split("upstream potluck_edge {", 1)[1].split("}", 1)[0]
    assert "127.0.0.1:7101" in edge_block
    assert "7001" not in edge_block
    (tmp_path / "nginx.conf").write_text(conf)
    args = ["nginx", "-t", "-q", "-p", f"{tmp_path}/", "-e", str(tmp_path / "error.log")]
    args += ["-c", str(tmp_path / "nginx.conf")]
    done = subprocess.run(args, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


@pytest.mark.parametrize(("connections", "accepted"), [(MAX_CONNECTIONS, True), (MAX_CONNECTIONS + 1, False)])
def test_the_connection_bound_is_nginxs_own(tmp_path: Path, connections: int, accepted: bool) -> None:
    """GatewayLimits refuses what nginx refuses (built here without validation, to ask nginx itself)."""
    (tmp_path / "tmp").mkdir()
    limits = GatewayLimits.model_construct(**{**GatewayLimits().model_dump(), "address_connections": connections})
    template = (DEPLOY / "nginx" / "nginx.conf.template").read_text()
    conf = render_nginx_conf(template, nginx_dir=tmp_path, lb_port=18999, api_ports=[7001], limits=limits)
    (tmp_path / "nginx.conf").write_text(conf)
    args = ["nginx", "-t", "-q", "-p", f"{tmp_path}/", "-e", str(tmp_path / "error.log")]
    args += ["-c", str(tmp_path / "nginx.conf")]
    done = subprocess.run(args, capture_output=True)
    assert (done.returncode == 0) is accepted, done.stderr.decode()[-2000:]
