# argo-http-agent: two stages.
#   builder  builds the project into a virtual environment at /opt/venv (pip, setuptools and
#            the build backend stay here)
#   runtime  the same slim Python base plus that virtual environment only: no compiler, no pip
#            in the venv, a non-root numeric user, nothing writable but /tmp (mounted by k8s)
#
#   docker build -t argo-http-agent:0.1.0 .
#   docker run --rm argo-http-agent:0.1.0 --help

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# The venv gets no pip of its own: the builder's pip installs into it (--python), so the
# runtime image carries the project and its dependencies only.
RUN python -m venv --without-pip /opt/venv

COPY pyproject.toml README.md constraints.txt ./
COPY agent ./agent

# A local path, not a registry name, pinned by constraints.txt: the image gets the exact
# versions `make test` tested (pyproject.toml's ranges only bound them).
RUN python -m pip --python /opt/venv/bin/python install --no-cache-dir --compile \
        -c constraints.txt . \
    && /opt/venv/bin/argo-http-agent version


FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="argo-http-agent" \
      org.opencontainers.image.description="Executes Argo Workflows' HTTP and plugin templates (WorkflowTaskSet protocol)" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric user (the chart's runAsUser), so Kubernetes can verify runAsNonRoot.
RUN groupadd --system --gid 10001 agent \
    && useradd --system --uid 10001 --gid agent --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin agent

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001

# The read-only HTTP API: /healthz, /readyz, /metrics, /version.
EXPOSE 9090

ENTRYPOINT ["argo-http-agent"]
CMD ["run"]
