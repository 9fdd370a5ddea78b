"""The OpenAPI document is the contract (issue 18, finding 8): schemathesis, every check and every phase
(examples, coverage, fuzzing, stateful), a fixed seed and bounded examples, against `potluck serve` on the
embedded default, signed in and anonymous. The allow-list, each entry with its reason, is `schemathesis.toml`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.stack import ApiProcess

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    data = tmp_path_factory.mktemp("contract")
    env = {
        **os.environ,
        "POTLUCK_DATA_DIR": str(data),
        "POTLUCK_OBSERVABILITY__LOG_LEVEL": "WARNING",
        # Test-sized argon2 costs: the run signs in once, but registers many generated users.
        "POTLUCK_AUTH__ARGON2_TIME_COST": "1",
        "POTLUCK_AUTH__ARGON2_MEMORY_KIB": "1024",
        "POTLUCK_AUTH__ARGON2_PARALLELISM": "1",
    }
    subprocess.run([sys.executable, "-m", "potluck.cli.main", "migrate"], env=env, check=True, capture_output=True)
    process = ApiProcess(env, data / "api.log")
    try:
        process.wait_ready(60)
        yield process
    finally:
        process.stop()


@pytest.mark.parametrize("signed_in", [True, False], ids=["signed-in", "anonymous"])
def test_schemathesis_finds_nothing(api: ApiProcess, tmp_path: Path, signed_in: bool) -> None:
    auth: list[str] = []
    if signed_in:
        with httpx.Client(base_url=api.url, timeout=30) as http:
            user = {"email": "contract@example.com", "username": "contract", "password": "correct horse battery"}
            # 202: the same answer whether or not the email is known.
            assert http.post("/api/v1/auth/register", json=user).status_code == 202
            token = http.post("/api/v1/auth/token", data={"username": "contract", "password": user["password"]})
            auth = ["--header", f"Authorization: Bearer {token.json()['access_token']}"]
            # Signing out would end the run's own session: every later call would be a 401 and test nothing.
            auth += ["--exclude-path-regex", "^/api/v1/auth/logout"]
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(ROOT / "schemathesis.toml"),
            "run",
            f"{api.url}/openapi.json",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--include-path-regex",
            "^/api/v1/",
            *auth,
            "--workers",
            "1",
            "--no-shrink",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5000:]
    assert "passed" in result.stdout
