# naftiko-run: serves every capability document mounted at /capabilities, as a gateway.
#
#   docker build -t naftiko .
#   docker run --rm -p 8080:8080 \
#     -v "$PWD/capabilities:/capabilities:ro" -e TIKTOK_FOR_DEVELOPERS_API_KEY=... naftiko
#   docker run --rm -v "$PWD/capabilities:/capabilities:ro" naftiko --check
#
# Arguments add to the default: the folder comes from NAFTIKO_CAPABILITIES, so flags
# (--check, --log-level debug, --port NS=PORT) need no path; a path given replaces it.
# Port: 8080 is the gateway (NAFTIKO_GATEWAY_PORT below): every adapter of every document
# under /NS/..., one MCP endpoint for agents at /mcp, the catalogue at /, and /health/*,
# /metrics, /status. To serve one document on its declared ports instead, set
# NAFTIKO_GATEWAY_PORT= (empty) and publish those ports.
# Binding: NAFTIKO_IN_CONTAINER=1 makes every adapter listen on 0.0.0.0.
# podman: build with `--format docker`, or the OCI format silently drops the HEALTHCHECK.

# The base, pinned by digest for reproducible builds (README, "Container image" says how
# to refresh it): docker build --build-arg PYTHON_BASE=python:3.11-slim@sha256:<digest> .
ARG PYTHON_BASE=python:3.11-slim

# ---------------------------------------------------------------- build stage
FROM ${PYTHON_BASE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# strip: several wheels ship their extension modules with debug symbols (uvloop's alone
# is 13 MB, 1.6 MB stripped); only this stage has binutils.
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"

WORKDIR /src
# The pinned dependencies first, so their layer is reused when only sources change.
COPY requirements.lock ./
# JavaScript source maps (Swagger UI's, 7 MB) serve only a browser's developer tools.
RUN pip install --no-deps --require-hashes -r requirements.lock \
    && find /opt/venv -name '*.so' -exec strip --strip-unneeded {} + \
    && find /opt/venv -name '*.js.map' -delete
COPY pyproject.toml README.md ./
COPY src ./src
# The runtime never installs anything: pip and setuptools (with pkg_resources) go.
RUN pip install --no-deps . \
    && pip uninstall --yes --quiet setuptools pip \
    && python -m compileall -q /opt/venv/lib

# ---------------------------------------------------------------- runtime stage
FROM ${PYTHON_BASE} AS runtime

# The base already trusts the OS CA store (ca-certificates), which outbound HTTPS uses;
# README, "Container image" says how to add a CA. The base ships no standard-library
# .pyc and the process cannot write them (non-root, read-only): compile them here, or
# every start recompiles what it imports.
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/naftiko \
        --shell /usr/sbin/nologin naftiko \
    && python -m compileall -q -j 0 \
        -x '/(site-packages|dist-packages|test|tests|idlelib|tkinter|turtledemo|lib2to3|ensurepip)/' \
        "$(python -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"

COPY --from=builder /opt/venv /opt/venv

# NAFTIKO_GRACE_PERIOD: the drain must end before the engine's SIGKILL (docker and podman
# stop: 10 s; compose stop_grace_period, Kubernetes terminationGracePeriodSeconds). To
# let longer calls finish, raise both together (README, "Container image").
ENV PATH="/opt/venv/bin:$PATH" \
    HOME=/home/naftiko \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NAFTIKO_IN_CONTAINER=1 \
    NAFTIKO_CAPABILITIES=/capabilities \
    NAFTIKO_GATEWAY_PORT=8080 \
    NAFTIKO_GRACE_PERIOD=8 \
    NAFTIKO_LOG_FORMAT=json

USER 10001
WORKDIR /capabilities

EXPOSE 8080

# Readiness of every adapter, through the control endpoints (the gateway's port when
# NAFTIKO_GATEWAY_PORT is set); python, not curl (not installed).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/ready' % (os.environ.get('NAFTIKO_GATEWAY_PORT') or os.environ.get('NAFTIKO_CONTROL_PORT', '9091')), timeout=2)"]

# Exec form: naftiko-run is PID 1 and receives SIGTERM itself (graceful shutdown).
STOPSIGNAL SIGTERM
ENTRYPOINT ["naftiko-run"]
CMD []
