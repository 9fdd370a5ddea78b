#!/usr/bin/env bash
# Install everything the test suite needs on Debian 12: PostgreSQL 15, Redis + Sentinel, nginx, promtool,
# Patroni, etcd, pgBackRest and Varnish (+ varnish-modules: xkey, var) from
# apt, uv from PyPI, then the project's locked Python environment (uv sync --frozen).
#
# With --python-only (make run), only uv and the Python environment: the embedded default needs no servers.
# With --image (the Dockerfile's build stage, and tests/infra/test_image.py in CI), only uv and the runtime
# environment: `uv sync --frozen --no-dev --no-editable` into $UV_PROJECT_ENVIRONMENT (no test tools, the
# project installed as a wheel so the image needs no source tree).
#
# Idempotent and non-interactive (no TTY needed). apt is skipped entirely when the binaries are
# already present, so repeated runs only cost the uv sync. Needs root (or sudo) only if apt must run.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
apt_packages=(postgresql-15 redis-server redis-sentinel nginx prometheus patroni etcd-server pgbackrest varnish varnish-modules)

log() { printf '[install-deps] %s\n' "$*"; }

# command -v, plus the sbin dirs a non-root PATH may lack (nginx lives in /usr/sbin)
have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/sbin/$1" ]]; }

missing=()
[[ -x /usr/lib/postgresql/15/bin/initdb ]] || missing+=("postgresql-15 (initdb)")
for bin in redis-server redis-sentinel nginx promtool patroni etcd pgbackrest varnishd; do
    have "$bin" || missing+=("$bin")
done
# The edge's xkey (surrogate-key purges) and var (leases) modules come with varnish-modules.
[[ -e /usr/lib/x86_64-linux-gnu/varnish/vmods/libvmod_xkey.so || -n "$(find /usr/lib -name libvmod_xkey.so -print -quit 2>/dev/null)" ]] || missing+=("varnish-modules (xkey)")

mode="${1:-}"
sync_args=(--frozen)
if [[ "$mode" == "--image" ]]; then
    sync_args+=(--no-dev --no-editable)
fi

if [[ "$mode" == "--python-only" || "$mode" == "--image" ]]; then
    log "python environment only (the embedded default and the image need no system packages)"
elif ((${#missing[@]} == 0)); then
    log "system packages present (postgresql-15, redis-server, redis-sentinel, nginx, promtool, patroni, etcd, pgbackrest, varnish): skipping apt"
else
    log "missing: ${missing[*]}; installing ${apt_packages[*]}"
    sudo=()
    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo -n DEBIAN_FRONTEND=noninteractive)
        else
            log "ERROR: apt-get needs root; re-run as root or install: ${apt_packages[*]}" >&2
            exit 1
        fi
    fi
    apt_opts=(-q -y -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    "${sudo[@]}" apt-get "${apt_opts[@]}" update </dev/null
    "${sudo[@]}" apt-get "${apt_opts[@]}" install --no-install-recommends --no-upgrade "${apt_packages[@]}" </dev/null
    log "apt packages installed"
fi

uv=(uv)
if ! command -v uv >/dev/null 2>&1; then
    log "uv not found: pip install uv"
    # Debian's system python refuses plain pip installs (PEP 668); retry with --break-system-packages.
    python3 -m pip install --quiet --disable-pip-version-check uv </dev/null ||
        python3 -m pip install --quiet --disable-pip-version-check --break-system-packages uv </dev/null
    hash -r
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
    if ! command -v uv >/dev/null 2>&1; then
        uv=(python3 -m uv) # the PyPI package also runs as a module when its script dir is not on PATH
    fi
fi
log "using $("${uv[@]}" --version)"

log "uv sync ${sync_args[*]} in $repo_root"
cd "$repo_root"
"${uv[@]}" sync "${sync_args[@]}" </dev/null
log "done"
