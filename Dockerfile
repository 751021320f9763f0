# Paydeck images: one build, two targets sharing the same installed project.
#
#   docker build --target runtime  -t payment-runtime:dev  .   # the payment service
#   docker build --target operator -t payment-operator:dev .   # the Kopf operator (default)
#
# Both targets hold both console scripts (`payment-runtime`, `payment-operator`); they differ
# only in the entrypoint. The operator builds runtime pods with `args: [serve]` and migration
# Jobs with `args: [migrate]`, so the runtime image's ENTRYPOINT must be `payment-runtime`.
# The install bundle and chart set `command: [payment-operator]` explicitly.
# No secrets are baked in; both run as uid/gid 10001 with a read-only root filesystem (the pods
# mount an emptyDir on /tmp). No HEALTHCHECK: Kubernetes probes the HTTP endpoints.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: install the project and its dependencies into a virtualenv --------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/paydeck
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY payment_runtime/ payment_runtime/
RUN /opt/paydeck/bin/pip install --upgrade pip \
 && /opt/paydeck/bin/pip install . \
 && /opt/paydeck/bin/python -m compileall -q /opt/paydeck/lib

# ---- base: the slim interpreter, an unprivileged user and the virtualenv -------------------
FROM ${PYTHON_IMAGE} AS base
RUN groupadd --system --gid 10001 paydeck \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin paydeck
COPY --from=build /opt/paydeck /opt/paydeck
ENV PATH=/opt/paydeck/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp
# Numeric, so the kubelet can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001

# ---- runtime: the payment service (HTTP 8080, metrics 9090) --------------------------------
FROM base AS runtime
LABEL org.opencontainers.image.title="payment-runtime" \
      org.opencontainers.image.description="Paydeck payment service" \
      org.opencontainers.image.licenses="Apache-2.0"
EXPOSE 8080 9090
ENTRYPOINT ["payment-runtime"]
CMD ["serve"]

# ---- operator: the Kopf operator (liveness 8080 /healthz, metrics 9090); the default target -
FROM base AS operator
LABEL org.opencontainers.image.title="payment-operator" \
      org.opencontainers.image.description="Paydeck Kubernetes operator" \
      org.opencontainers.image.licenses="Apache-2.0"
EXPOSE 8080 9090
ENTRYPOINT ["payment-operator"]
