"""The operator never takes over an object it does not own: pre-existing objects named like a
PaymentService's children stay byte-identical, the PaymentService says which object is in the
way, and it recovers once that object is gone."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.conftest import condition, get_json, wait_for
from tests.e2e.test_operator import _apply, _ready, _sample

pytestmark = pytest.mark.e2e

NAME = "guarded"


def _deny_all(name: str) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}


def _service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": "legacy"},
                     "ports": [{"name": "web", "port": 8000, "protocol": "TCP"}]}}


def _config_map(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"PAYMENT_JWKS_URL": "https://keys.example.invalid/jwks"}}


def _payment_service(name: str) -> dict:
    ps = _sample("minimal")
    ps["metadata"]["name"] = name
    return ps


def _degraded(cluster, namespace: str, name: str) -> dict | None:
    obj = get_json(cluster, "paysvc", name, "-n", namespace)
    return obj if condition(obj, "Degraded").get("status") == "True" else None


def _warnings(cluster, namespace: str, name: str) -> list[str]:
    out = cluster.kubectl(
        "get", "events", "-n", namespace, "-o", "jsonpath={.items[*].message}",
        f"--field-selector=involvedObject.name={name},reason=ConflictingObject,type=Warning",
    ).stdout
    return [out] if out.strip() else []


def _assert_conflict(obj: dict, *refs: str) -> None:
    cond = condition(obj, "Degraded")
    assert cond["reason"] == "ConflictingObject", cond
    for ref in refs:
        assert f"{ref} exists and is not owned by this PaymentService" in cond["message"]
    assert condition(obj, "Stalled")["status"] == "True"
    assert obj["status"]["phase"] == "Degraded"


def test_existing_objects_are_never_taken_over(cluster, namespace, operator):
    started = time.monotonic()
    theirs = {("networkpolicy", NAME): _deny_all(NAME), ("service", NAME): _service(NAME),
              ("configmap", f"{NAME}-config"): _config_map(f"{NAME}-config")}
    for obj in theirs.values():
        cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(obj))
    keys = [*theirs, ("serviceaccount", "default")]
    before = {key: get_json(cluster, *key, "-n", namespace) for key in keys}

    _apply(cluster, namespace, _payment_service(NAME))
    _apply(cluster, namespace, _payment_service("default"))
    guarded = wait_for(lambda: _degraded(cluster, namespace, NAME), 30, "Degraded", operator)
    _assert_conflict(guarded, f"NetworkPolicy/{NAME}", f"Service/{NAME}",
                     f"ConfigMap/{NAME}-config")
    default = wait_for(lambda: _degraded(cluster, namespace, "default"), 30, "Degraded",
                       operator)
    _assert_conflict(default, "ServiceAccount/default")
    for name in (NAME, "default"):
        wait_for(lambda name=name: _warnings(cluster, namespace, name), 20,
                 f"a ConflictingObject Warning about {name}", operator)
    # The children that were free are ours; the workload waits until every child is.
    assert get_json(cluster, "serviceaccount", NAME, "-n", namespace)["metadata"][
        "ownerReferences"][0]["uid"] == guarded["metadata"]["uid"]
    assert get_json(cluster, "deployment", NAME, "-n", namespace) is None
    assert get_json(cluster, "deployment", "default", "-n", namespace) is None

    after = {key: get_json(cluster, *key, "-n", namespace) for key in keys}
    for key in keys:
        assert after[key] == before[key], f"{key} was modified"
        assert "ownerReferences" not in after[key]["metadata"], key

    for kind, name in theirs:
        cluster.kubectl("delete", kind, name, "-n", namespace)
    obj = wait_for(lambda: _ready(cluster, namespace, NAME), 50, "recovery to Ready", operator)
    assert obj["status"]["phase"] == "Healthy"
    for kind, name in theirs:
        owners = get_json(cluster, kind, name, "-n", namespace)["metadata"]["ownerReferences"]
        assert [o["uid"] for o in owners if o.get("controller")] == [obj["metadata"]["uid"]]
    assert time.monotonic() - started < 60
