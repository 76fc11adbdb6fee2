# naftiko-run: serves every capability document mounted at /capabilities.
#
#   docker build -t naftiko .
#   docker run --rm -p 8080:8080 -p 9090:9090 -p 9091:9091 \
#     -v "$PWD/capabilities:/capabilities:ro" -e TIKTOK_FOR_DEVELOPERS_API_KEY=... naftiko
#
# Ports: 8080 (REST) and 9090 (MCP) are what published documents declare; 9091 is the
# control port (health, /metrics, /status) added by NAFTIKO_CONTROL_PORT below, so the
# HEALTHCHECK works with any document, and it overrides a declared control port.
# Binding: NAFTIKO_IN_CONTAINER=1 makes every adapter listen on 0.0.0.0.

# ---------------------------------------------------------------- build stage
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"

WORKDIR /src
# Metadata first, so the dependency layer is reused when only sources change.
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && python -m compileall -q /opt/venv/lib

# ---------------------------------------------------------------- runtime stage
FROM python:3.11-slim AS runtime

# httpx verifies upstream TLS against the OS trust store.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin naftiko

COPY --from=builder /opt/venv /opt/venv

ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NAFTIKO_IN_CONTAINER=1 \
    NAFTIKO_CONTROL_PORT=9091 \
    NAFTIKO_LOG_FORMAT=json

USER 10001
WORKDIR /capabilities

EXPOSE 8080 9090 9091

# Readiness of every adapter, through the control port; python, not curl (not installed).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/ready' % os.environ.get('NAFTIKO_CONTROL_PORT', '9091'), timeout=2)"]

# Exec form: naftiko-run is PID 1 and receives SIGTERM itself (graceful shutdown).
STOPSIGNAL SIGTERM
ENTRYPOINT ["naftiko-run"]
CMD ["/capabilities"]
