# Paydeck images: one build, two targets, each with only the dependencies it needs.
#
#   docker build --target runtime  -t payment-runtime:dev  .   # the payment service
#   docker build --target operator -t payment-operator:dev .   # the Kopf operator (default)
#
# Supply chain: the base image is pinned by digest (PYTHON_IMAGE below); every dependency is
# installed from a hash-locked file (requirements/<image>.txt, generated from pyproject.toml by
# `make lock`) with `--require-hashes --no-deps`, and the project's wheel is built with a
# hash-locked hatchling (requirements/build.txt) without build isolation. The final stages hold
# no pip, setuptools or wheel: the virtualenv is made `--without-pip` in a builder stage and
# copied, and the base interpreter's own pip is uninstalled.
#
# Split images: the runtime image carries no kopf or kubernetes client, the operator image no
# stripe or psycopg (extras `operator` and `runtime` in pyproject.toml). Both hold the project's
# single wheel, so both console scripts exist; each image's entrypoint is the one it can run.
# The operator builds runtime pods with `args: [serve]` and migration Jobs with
# `args: [migrate]`, so the runtime image's ENTRYPOINT must be `payment-runtime`.
# No secrets are baked in; both run as uid/gid 10001 with a read-only root filesystem (the pods
# mount an emptyDir on /tmp). No HEALTHCHECK: Kubernetes probes the HTTP endpoints.

# The official python slim image for linux, pinned by digest. The digest must be refreshed
# when the base is updated: `docker buildx imagetools inspect python:3.11-slim-bookworm`
# prints the index digest to put after `@sha256:` (it was taken from published records, not
# looked up from this machine, which reaches no container registry).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

# ---- wheel: build the project's wheel with the locked build backend ------------------------
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements/build.txt requirements/build.txt
RUN python -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes --no-deps -r requirements/build.txt
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY payment_runtime/ payment_runtime/
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /dist .

# ---- venv-*: one virtualenv per image, without pip, from its hash-locked requirements ------
FROM ${PYTHON_IMAGE} AS venv-runtime
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY requirements/runtime.txt /tmp/requirements.txt
COPY --from=wheel /dist/ /tmp/dist/
RUN python -m venv --without-pip /opt/paydeck \
 && python -m pip --python /opt/paydeck/bin/python install --require-hashes --no-deps \
      -r /tmp/requirements.txt \
 && python -m pip --python /opt/paydeck/bin/python install --no-deps /tmp/dist/paydeck-*.whl \
 && /opt/paydeck/bin/python -m compileall -q /opt/paydeck/lib

FROM ${PYTHON_IMAGE} AS venv-operator
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY requirements/operator.txt /tmp/requirements.txt
COPY --from=wheel /dist/ /tmp/dist/
RUN python -m venv --without-pip /opt/paydeck \
 && python -m pip --python /opt/paydeck/bin/python install --require-hashes --no-deps \
      -r /tmp/requirements.txt \
 && python -m pip --python /opt/paydeck/bin/python install --no-deps /tmp/dist/paydeck-*.whl \
 && /opt/paydeck/bin/python -m compileall -q /opt/paydeck/lib

# ---- base: the slim interpreter without pip, and an unprivileged user ----------------------
FROM ${PYTHON_IMAGE} AS base
RUN python -m pip uninstall --yes --quiet pip setuptools wheel \
 && rm -rf /usr/local/lib/python3.*/ensurepip \
 && groupadd --system --gid 10001 paydeck \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin paydeck
ENV PATH=/opt/paydeck/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp

# ---- runtime: the payment service (HTTP 8080, metrics 9090) --------------------------------
FROM base AS runtime
COPY --from=venv-runtime /opt/paydeck /opt/paydeck
LABEL org.opencontainers.image.title="payment-runtime" \
      org.opencontainers.image.description="Paydeck payment service" \
      org.opencontainers.image.licenses="Apache-2.0"
EXPOSE 8080 9090
# Numeric, so the kubelet can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
ENTRYPOINT ["payment-runtime"]
CMD ["serve"]

# ---- operator: the Kopf operator (liveness 8080 /healthz, metrics 9090); the default target -
FROM base AS operator
COPY --from=venv-operator /opt/paydeck /opt/paydeck
LABEL org.opencontainers.image.title="payment-operator" \
      org.opencontainers.image.description="Paydeck Kubernetes operator" \
      org.opencontainers.image.licenses="Apache-2.0"
EXPOSE 8080 9090
USER 10001:10001
ENTRYPOINT ["payment-operator"]
