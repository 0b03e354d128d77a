# syntax=docker/dockerfile:1
# The ssvm-operator image: `ssvm-operator run` as a non-root user, read-only root filesystem ready
# (only /tmp is written). Build:  docker build -t ssvm-operator:0.1.0 .
# tests/packaging/test_dockerfile.py checks this file and builds its venv the same way.

# Exact patch release of the slim Debian bookworm Python image; both stages use the same one so the
# venv's interpreter links stay valid. Pin by digest in your registry mirror if you have one.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# The package and its runtime dependencies only: no devcluster or test extras (no kmock in the image).
RUN python -m venv /opt/ssvm \
    && /opt/ssvm/bin/pip install . \
    && /opt/ssvm/bin/python -m compileall -q /opt/ssvm/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="ssvm-operator" \
      org.opencontainers.image.description="Kubernetes operator for CloudStack-style Secondary Storage VMs" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 ssvm \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin ssvm
COPY --from=build /opt/ssvm /opt/ssvm
# Bytecode is precompiled above, so nothing needs to write next to the code; HOME and TMPDIR point
# at /tmp, the only writable path (an emptyDir in the Helm chart).
ENV PATH=/opt/ssvm/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
USER 10001:10001
WORKDIR /tmp
# 8080: kopf liveness (/healthz); 9090: Prometheus metrics (/metrics).
EXPOSE 8080 9090
# For plain docker runs; in Kubernetes the chart's livenessProbe on the same endpoint is what counts.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["ssvm-operator", "run"]
CMD ["--all-namespaces"]
