# Paydeck — every target installs what it needs. Start with `make run` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
CLUSTER ?= dev
KUBECTL = $(shell $(PY) -m hack.tools path kubectl)
PYTEST_ARGS ?=

.PHONY: run down test test-unit test-integration test-e2e lint manifests bench tools deps sysdeps venv \
        docker-build helm-lint lock clean

## run: local control plane + CRDs + operator in the foreground + a sample PaymentService
run: deps tools
	$(PY) -m hack.run --cluster $(CLUSTER)

## down: stop the local control plane started by `make run`
down: venv
	$(PY) -m hack.cluster down --name $(CLUSTER)

## test: install everything, lint, then the whole suite (unit, integration, e2e)
test: deps tools lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-integration: deps tools
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

test-e2e: deps tools
	$(PY) -m pytest -m e2e $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m payment_operator.api.crdgen --check

## manifests: regenerate the CRD from the pydantic models
manifests: venv
	$(PY) -m payment_operator.api.crdgen
	cp crds/*.yaml charts/payment-operator/crds/

## lock: hash-locked requirements of each image (and of the wheel build) from pyproject.toml
LOCK := $(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform linux --custom-compile-command "make lock"
lock: venv
	$(LOCK) pyproject.toml --extra operator -o requirements/operator.txt
	$(LOCK) pyproject.toml --extra runtime -o requirements/runtime.txt
	$(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
	  | $(LOCK) - -o requirements/build.txt

helm-lint: tools
	$$($(PY) -m hack.tools path helm) lint charts/payment-operator --strict --kube-version 1.34.4

## docker-build: needs a Docker engine (none on the CI machine)
docker-build:
	docker build --target operator -t payment-operator:dev .
	docker build --target runtime -t payment-runtime:dev .

## bench: every benchmark (builds Argo Rollouts' controller too, which `make test` never needs)
bench: deps tools
	PAYDECK_BENCH=1 hack/system-deps.sh
	$(VENV)/bin/pip install -q -e '.[dev,bench]'
	$(PY) -m hack.argo_rollouts build
	$(PY) -m bench

## deps: system packages, then the Python virtualenv
deps: venv

sysdeps:
	hack/system-deps.sh

venv: $(STAMP)

$(STAMP): | sysdeps
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

## tools: build kube-apiserver & co, etcd, kwok, stripe-mock, helm once (cached in ~/.cache/paydeck)
tools: venv
	$(PY) -m hack.tools build
	$(PY) -m hack.kafka fetch

clean: down
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
