"""S3: the endpoint backups go to, and the local S3-compatible server that stands in for it on this machine.

The local server is moto (a dev dependency) on plain HTTP behind nginx terminating TLS (deploy/s3/
tls-proxy.conf.template says why pgBackRest needs that). Both run detached with pid files in one directory, so
`potluck cluster down` finds them again. moto keeps its objects in memory: stopping it empties every bucket.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from potluck_ops.failures import OpsError
from potluck_ops.nginx import render_template
from potluck_ops.ports import HOST, port_is_free
from potluck_ops.processes import (
    http_status,
    pid_alive,
    read_pid,
    run,
    start_logged,
    stop_pidfile,
    wait_or_kill,
    wait_until,
)

LOCAL_KEY = "test"  # moto accepts any credentials
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class S3Endpoint:
    """Where an S3 API answers and how to sign for it. `verify_tls` false only for the local self-signed one."""

    host: str
    port: int
    region: str = DEFAULT_REGION
    key: str = LOCAL_KEY
    secret: str = LOCAL_KEY
    verify_tls: bool = False
    ca_file: Path | None = None  # the local server's self-signed certificate: clients verify against it

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def client(self) -> Any:
        """A boto3 S3 client (path-style addressing: the local server has no per-bucket host names)."""
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            verify=str(self.ca_file) if self.ca_file else self.verify_tls,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def as_json(self) -> dict[str, Any]:
        return {"url": self.url, "host": self.host, "port": self.port, "region": self.region}


def ensure_bucket(endpoint: S3Endpoint, bucket: str) -> None:
    """Create `bucket` unless it exists."""
    client = endpoint.client()
    names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in names:
        client.create_bucket(Bucket=bucket)


def apply_bucket_config(endpoint: S3Endpoint, bucket: str, config_dir: Path) -> list[str]:
    """Apply deploy/s3/'s versioning and replication documents to `bucket`; the names of what was applied."""
    client = endpoint.client()
    versioning = json.loads((config_dir / "media-versioning.json").read_text())
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=versioning)
    applied = ["versioning"]
    replication = json.loads((config_dir / "media-replication.json").read_text())
    for rule in replication.get("Rules", []):
        target = rule["Destination"]["Bucket"].removeprefix("arn:aws:s3:::")
        # The replica bucket lives in another region on a real cloud; locally it is one more bucket.
        ensure_bucket(endpoint, target)
        client.put_bucket_versioning(Bucket=target, VersioningConfiguration=versioning)
    client.put_bucket_replication(Bucket=bucket, ReplicationConfiguration=replication)
    applied.append("replication")
    return applied


# ------------------------------------------------------------------------------------------- the local server


def moto_command() -> list[str]:
    script = Path(sys.executable).parent / "moto_server"
    if script.is_file():
        return [str(script)]
    found = shutil.which("moto_server")
    if found is None:
        raise OpsError("moto_server not found: the local S3 server is a dev dependency (uv sync --frozen)")
    return [found]


def _make_certificate(tls_dir: Path) -> None:
    if (tls_dir / "cert.pem").exists() and (tls_dir / "key.pem").exists():
        return
    tls_dir.mkdir(parents=True, exist_ok=True)
    args: list[str | Path] = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650"]
    args += ["-keyout", tls_dir / "key.pem", "-out", tls_dir / "cert.pem", "-subj", f"/CN={HOST}"]
    args += ["-addext", f"subjectAltName=IP:{HOST},DNS:localhost"]
    run(args, what="openssl: a self-signed certificate for the local S3 server")


@dataclass(frozen=True)
class LocalS3:
    """The local server as started: its TLS endpoint, and the processes (a caller that outlives them reaps them)."""

    endpoint: S3Endpoint
    processes: tuple[subprocess.Popen[bytes], ...]

    def reap(self, timeout: float = 15) -> None:
        for proc in self.processes:
            wait_or_kill(proc, timeout)


def start_local_s3(s3_dir: Path, deploy: Path, *, http_port: int, tls_port: int) -> LocalS3:
    """Start moto on HOST:http_port and nginx TLS on HOST:tls_port (both detached, with pid files)."""
    if shutil.which("nginx") is None:
        raise OpsError("nginx not found on PATH: it terminates TLS for the local S3 server (apt-get install nginx)")
    for port in (http_port, tls_port):
        if not port_is_free(port):
            raise OpsError(f"port {port} on {HOST} is in use: the local S3 server cannot start there")
    s3_dir.mkdir(parents=True, exist_ok=True)
    (s3_dir / "tmp").mkdir(exist_ok=True)
    _make_certificate(s3_dir / "tls")
    moto_log = s3_dir / "moto.log"
    args = [*moto_command(), "-H", HOST, "-p", str(http_port)]
    moto = start_logged(args, log=moto_log, pid_file=s3_dir / "moto.pid", env=os.environ)
    ready = f"http://{HOST}:{http_port}/"
    wait_until(lambda: http_status(ready) == 200, what=f"moto on {ready}", timeout=60, proc=moto, logs=[moto_log])
    template = (deploy / "s3" / "tls-proxy.conf.template").read_text()
    values = {"s3_dir": str(s3_dir), "listen": f"{HOST}:{tls_port}", "upstream": f"{HOST}:{http_port}"}
    conf = s3_dir / "nginx.conf"
    conf.write_text(render_template(template, values))
    nginx_log = s3_dir / "nginx-error.log"
    nginx_args: list[str | Path] = ["nginx", "-p", f"{s3_dir}/", "-e", nginx_log, "-c", conf]
    run([*nginx_args, "-t", "-q"], what="nginx -t (S3 TLS proxy)", logs=[nginx_log])
    proxy = start_logged(nginx_args, log=s3_dir / "nginx.out", pid_file=s3_dir / "proxy.pid", env=os.environ)
    wait_until(lambda: not port_is_free(tls_port), what=f"S3 TLS on {tls_port}", timeout=20, proc=proxy)
    endpoint = S3Endpoint(HOST, tls_port, ca_file=s3_dir / "tls" / "cert.pem")
    (s3_dir / "endpoint.json").write_text(json.dumps({"port": tls_port, "http_port": http_port}))
    return LocalS3(endpoint, (moto, proxy))


def running_local_s3(s3_dir: Path) -> S3Endpoint | None:
    """The endpoint of a local server started from `s3_dir` that still runs (moto and its TLS proxy), or None."""
    try:
        saved = json.loads((s3_dir / "endpoint.json").read_text())
    except (OSError, ValueError):
        return None
    moto, proxy = read_pid(s3_dir / "moto.pid"), read_pid(s3_dir / "proxy.pid")
    if not (pid_alive(moto) and pid_alive(proxy)) or http_status(f"http://{HOST}:{saved['http_port']}/") != 200:
        return None
    return S3Endpoint(HOST, saved["port"], ca_file=s3_dir / "tls" / "cert.pem")


def stop_local_s3(s3_dir: Path) -> list[str]:
    """Stop the TLS proxy and moto started from `s3_dir` (moto's objects are gone with it)."""
    stopped = []
    if stop_pidfile(s3_dir / "proxy.pid", [b"nginx", bytes(s3_dir)], timeout=10):
        stopped.append("s3-tls")
    if stop_pidfile(s3_dir / "moto.pid", [b"moto_server"], timeout=10):
        stopped.append("s3")
    return stopped
