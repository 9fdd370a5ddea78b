# syntax=docker/dockerfile:1
# Potluck's one image: `serve` (the default), `worker`, `beat`, `migrate` (docs/deploy.md, "The image").
#
#   docker build -t potluck:0.1.0 .
#   docker run --rm -p 8000:8000 potluck:0.1.0                      # the embedded default (SQLite, in-process cache)
#   docker run --rm potluck:0.1.0 worker | beat | migrate
#
# No container engine runs on this project's machines, so this file is never built there. Its build steps are
# two scripts, and CI runs both on every run (tests/infra/test_image.py): scripts/install-deps.sh --image (uv,
# then `uv sync --frozen --no-dev --no-editable`: the locked runtime dependencies, the project as a wheel) and
# scripts/image-check.sh (the CLI starts, the app and worker import, migrations run, no test tools). A test also
# checks that this file still runs those two scripts.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# --- build: uv and the locked environment ------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV UV_PROJECT_ENVIRONMENT=/opt/potluck \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies first, so a source change does not reinstall them (the lock decides every version).
COPY pyproject.toml uv.lock README.md ./
COPY scripts/install-deps.sh scripts/image-check.sh scripts/
COPY src/ src/
RUN bash scripts/install-deps.sh --image
RUN bash scripts/image-check.sh /opt/potluck

# --- runtime: the environment alone, as a non-root user; no compiler, no uv, no source tree ------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 potluck \
    && useradd --system --uid 10001 --gid potluck --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin potluck \
    && mkdir -p /var/lib/potluck/media /var/run/potluck/metrics \
    && chown -R potluck:potluck /var/lib/potluck /var/run/potluck
COPY --from=build /opt/potluck /opt/potluck
ENV PATH=/opt/potluck/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    POTLUCK_DATA_DIR=/var/lib/potluck
USER 10001:10001
WORKDIR /var/lib/potluck
EXPOSE 8000
# For `serve` (worker and beat containers override it: compose and Kubernetes set their own checks).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["potluck"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
