"""The environment the operator's builders give the runtime container (or the ``migrate`` init
container), resolved as the kubelet would: the ConfigMap named by ``envFrom`` first, then
``env`` entries (which win), with each ``secretKeyRef`` replaced by a test value chosen per
env var name.

Shared by the unit contract test (names and parsing) and the integration contract test (a
real ``payment-runtime`` process started with exactly this environment).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from payment_operator import api, builders

from payment_runtime.settings import Settings
from tests.unit.builders.cases import sample

PREFIX = "PAYMENT_"


def build_with_job(ps: api.PaymentService, ctx: builders.Context) -> list[dict[str, Any]]:
    """Every child of ``ps``, with the migration Job of its revision and its Deployment."""
    plan = builders.Workloads(replicas={builders.revision(ps): ps.spec.replicas}, migration=True)
    return builders.build_all(ps, ctx, plan)


def build_sample(name: str, ctx: builders.Context | None = None) -> list[dict[str, Any]]:
    """Every child the builders produce for ``manifests/samples/<name>.yaml`` (Job included)."""
    return build_with_job(api.parse(sample(name)), ctx or builders.Context())


def _pod_spec(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [m for m in manifests if m["kind"] == "Deployment"]
    return dict(deployment["spec"]["template"]["spec"])


def runtime_container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """The payment-runtime container of the stable Deployment."""
    (container,) = _pod_spec(manifests)["containers"]
    return dict(container)


def migrate_container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """The migration Job's one container, which applies the migrations."""
    (job,) = [m for m in manifests if m["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return dict(container)


def config_maps(manifests: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {m["metadata"]["name"]: m.get("data", {}) for m in manifests if m["kind"] == "ConfigMap"}


def resolve_env(
    manifests: list[dict[str, Any]],
    secrets: dict[str, str],
    container: dict[str, Any] | None = None,
) -> dict[str, str]:
    """A container's environment (the runtime container's unless ``container`` is given);
    ``secrets`` maps env var name -> value of its secretKeyRef.

    Anything this does not understand (another ``valueFrom`` kind, a Secret in ``envFrom``,
    a secretKeyRef without a test value) raises, so a builder change cannot slip past.
    """
    if container is None:
        container = runtime_container(manifests)
    maps = config_maps(manifests)
    env: dict[str, str] = {}
    for source in container.get("envFrom", ()):
        (kind,) = source.keys()
        if kind != "configMapRef":
            raise AssertionError(f"unexpected envFrom source {source}")
        env.update(maps[source["configMapRef"]["name"]])
    for var in container.get("env", ()):
        if "valueFrom" in var:
            (kind,) = var["valueFrom"].keys()
            if kind == "fieldRef" and var["name"] == "PAYMENT_REVISION":
                env[var["name"]] = "0123456789"  # the kubelet's value of the revision label
                continue
            if kind != "secretKeyRef":
                raise AssertionError(f"unexpected valueFrom {var}")
            if var["name"] not in secrets:
                raise AssertionError(f"no test value for the secret env var {var['name']}")
            env[var["name"]] = secrets[var["name"]]
        else:
            env[var["name"]] = var.get("value", "")
    return env


def secret_env_names(manifests: list[dict[str, Any]]) -> set[str]:
    """The env vars the container gets from a secretKeyRef."""
    return {
        var["name"]
        for var in runtime_container(manifests).get("env", ())
        if "secretKeyRef" in var.get("valueFrom", {})
    }


def port(container: dict[str, Any], name: str) -> int | None:
    for p in container.get("ports", ()):
        if p["name"] == name:
            return int(p["containerPort"])
    return None


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as the runtime reads them from exactly ``env`` (nothing else ``PAYMENT_*``)."""
    for key in list(os.environ):
        if key.upper().startswith(PREFIX):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()
