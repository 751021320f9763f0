"""Properties every case must have, whatever its spec: identity, canonical form, no secrets,
the restricted Pod Security Standard, a stable revision."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from payment_operator.api import PaymentService, parse
from payment_operator.builders import (
    Context,
    Workloads,
    build_all,
    child_labels,
    revision,
    selector,
    selector_labels,
    workloads,
)
from payment_operator.builders.kafka import CLUSTER_LABEL
from payment_operator.builders.workload import SECRET_ENV_NAMES, deployment_name

from tests.unit.builders.cases import (
    CASE_IDS,
    CASES,
    NAMESPACE,
    UID,
    Case,
    minimal_body,
    with_stored_env,
)

pytestmark = pytest.mark.unit
cases = pytest.mark.parametrize("case", CASES, ids=CASE_IDS)


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")


def _deployment(children: list[dict[str, Any]]) -> dict[str, Any]:
    [deployment] = [c for c in children if c["kind"] == "Deployment"]
    return deployment


def _pod_spec(case: Case) -> dict[str, Any]:
    spec: dict[str, Any] = _deployment(build_all(case.ps, case.ctx))["spec"]["template"]["spec"]
    return spec


def _job_pod_spec(case: Case) -> dict[str, Any]:
    plan = Workloads(replicas={}, migration=True)
    [job] = [c for c in workloads(case.ps, plan) if c["kind"] == "Job"]
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


@cases
def test_every_child_is_owned_by_the_payment_service_as_controller(case: Case) -> None:
    for child in build_all(case.ps, case.ctx):
        meta = child["metadata"]
        assert meta["namespace"] == NAMESPACE
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "paydeck.dev/v1alpha1",
                "kind": "PaymentService",
                "name": case.ps.metadata.name,
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


@cases
def test_children_carry_the_child_labels_and_only_labels_the_spec_asks_for(case: Case) -> None:
    ps = case.ps
    allowed_extra = dict(ps.spec.monitoring.labels or {}) if ps.spec.monitoring else {}
    if ps.spec.kafka and ps.spec.kafka.strimzi:
        allowed_extra[CLUSTER_LABEL] = ps.spec.kafka.strimzi.cluster_name
    for child in build_all(ps, case.ctx):
        labels = child["metadata"]["labels"]
        if child["kind"] in ("Deployment", "Job"):  # per revision
            allowed = {**allowed_extra, "paydeck.dev/revision": revision(ps)}
            if child["kind"] == "Job":
                allowed["app.kubernetes.io/component"] = "migration"
            extra = {k: v for k, v in labels.items() if k not in child_labels(ps)}
            assert extra.items() <= allowed.items(), child["kind"]
            continue
        extra = {k: v for k, v in labels.items() if k not in child_labels(ps)}
        assert {k: labels[k] for k in child_labels(ps)} == child_labels(ps), child["kind"]
        assert extra.items() <= allowed_extra.items(), child["kind"]


def test_no_label_of_the_custom_resource_reaches_a_child_or_pod() -> None:
    own = {"team": "checkout", "app.kubernetes.io/part-of": "checkout", "env": "prod"}
    for case in CASES:
        ps = parse({**case.body, "metadata": {**case.body["metadata"], "labels": own}})
        assert ps.metadata.labels == own
        children = build_all(ps, case.ctx)
        template = _deployment(children)["spec"]["template"]
        all_labels = [c["metadata"]["labels"] for c in children]
        for labels in [*all_labels, template["metadata"]["labels"]]:
            assert not (labels.items() & own.items()), (case.name, labels)


@cases
def test_output_is_canonical_json(case: Case) -> None:
    children = build_all(case.ps, case.ctx)
    assert json.loads(json.dumps(children)) == children
    for path, value in _walk(children):
        assert value is not None, path
        assert not isinstance(value, float), path
        if isinstance(value, dict | list) and not value:
            # The only empty value: "all pods of this namespace", which the API server keeps.
            assert re.search(r"\.from\[\d+\]\.podSelector$", path), path
        if re.search(r"\.ports\[\d+\]\.(containerPort|port)$", path):
            assert type(value) is int, path
        if re.search(r"\.ports\[\d+\]$", path):
            assert value.get("protocol") in ("TCP", "UDP"), path


@cases
def test_build_is_deterministic(case: Case) -> None:
    assert build_all(case.ps, case.ctx) == build_all(case.ps, case.ctx)
    assert revision(case.ps) == revision(case.ps)


@cases
def test_children_have_unique_kind_and_name(case: Case) -> None:
    keys = [(c["kind"], c["metadata"]["name"]) for c in build_all(case.ps, case.ctx)]
    assert len(keys) == len(set(keys))
    assert all(c["kind"] != "Secret" for c in build_all(case.ps, case.ctx))


@cases
def test_env_values_come_only_from_spec_env(case: Case) -> None:
    allowed = {(e.name, e.value) for e in case.ps.spec.env or ()}
    pod = _pod_spec(case)
    for container in pod.get("initContainers", []) + pod["containers"]:
        for var in container["env"]:
            if "valueFrom" in var:
                assert set(var) == {"name", "valueFrom"}
                if var["name"] == "PAYMENT_REVISION":  # the pod's own label, nothing else
                    assert var["valueFrom"] == {"fieldRef": {
                        "fieldPath": "metadata.labels['paydeck.dev/revision']"}}
                    continue
                assert set(var["valueFrom"]) == {"secretKeyRef"}
            else:
                assert (var["name"], var.get("value", "")) in allowed
        for name in SECRET_ENV_NAMES:
            assert all("valueFrom" in v for v in container["env"] if v["name"] == name)


def test_a_secret_smuggled_into_spec_env_never_reaches_a_child() -> None:
    leak = "postgresql://app:hunter2@db/payments"
    ps = with_stored_env(parse(minimal_body()), {"PAYMENT_DATABASE_URL": leak})
    text = json.dumps(build_all(ps, Context()))
    assert "hunter2" not in text
    assert '"secretKeyRef": {"name": "db", "key": "url"}' in text


RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The checks of the ``restricted`` Pod Security Standard (v1.30), as far as a spec shows."""
    problems = []
    pod_ctx = pod.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(key)
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']}: {kinds}")
    if pod_ctx.get("runAsUser") == 0:
        problems.append("pod runAsUser 0")
    pod_seccomp = pod_ctx.get("seccompProfile", {}).get("type")
    for c in pod.get("initContainers", []) + pod["containers"]:
        ctx = c.get("securityContext", {})
        name = c["name"]
        if ctx.get("privileged"):
            problems.append(f"{name}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation")
        if "ALL" not in ctx.get("capabilities", {}).get("drop", []):
            problems.append(f"{name}: capabilities not dropped")
        if set(ctx.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities added")
        if not ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot")
        if ctx.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = ctx.get("seccompProfile", {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccomp {seccomp}")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            problems.append(f"{name}: hostPort")
    return problems


@cases
def test_pod_template_passes_the_restricted_pod_security_standard(case: Case) -> None:
    pod = _pod_spec(case)
    job_pod = _job_pod_spec(case)
    assert restricted_violations(pod) == []
    assert restricted_violations(job_pod) == []
    assert "initContainers" not in pod  # migrations run in the Job, before any pod
    [container] = pod["containers"]
    [migrate] = job_pod["containers"]
    for c in (container, migrate):
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


def test_the_restricted_check_catches_violations() -> None:
    pod = _pod_spec(CASES[0])
    bad = json.loads(json.dumps(pod))
    bad["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    bad["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
    bad["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    assert sorted(restricted_violations(bad)) == [
        "payment-runtime: allowPrivilegeEscalation",
        "payment-runtime: seccomp Unconfined",
        "volume host: {'hostPath'}",
    ]
    # Init containers are checked as well as the main one.
    bad = json.loads(json.dumps(pod))
    migrate = json.loads(json.dumps(_job_pod_spec(CASES[0])["containers"][0]))
    bad["initContainers"] = [migrate]
    migrate["securityContext"]["capabilities"] = {"add": ["SYS_ADMIN"]}
    assert restricted_violations(bad) == [
        "migrate: capabilities not dropped",
        "migrate: capabilities added",
    ]


@cases
def test_selectors_are_consistent(case: Case) -> None:
    ps = case.ps
    children = build_all(ps, case.ctx)
    deployment = _deployment(children)
    assert deployment["metadata"]["name"] == deployment_name(ps, revision(ps))
    assert deployment["metadata"]["name"] == f"{ps.metadata.name}-{revision(ps)}"
    match = deployment["spec"]["selector"]["matchLabels"]
    assert match == {**selector_labels(ps), "paydeck.dev/revision": revision(ps)}
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert match.items() <= template_labels.items()
    assert template_labels["paydeck.dev/revision"] == revision(ps)
    assert dict(p.split("=") for p in selector(ps).split(",")) == selector_labels(ps)
    [svc] = [c for c in children if c["kind"] == "Service"]
    assert svc["spec"]["selector"] == selector_labels(ps)


def _spec_variant(body: dict[str, Any], **spec: Any) -> PaymentService:
    return parse({**body, "spec": {**body["spec"], **spec}})


@cases
def test_revision_follows_the_pods_not_the_scale(case: Case) -> None:
    base = revision(case.ps)
    assert re.fullmatch(r"[0-9a-f]{10}", base)
    body = case.body
    assert revision(_spec_variant(body, replicas=7)) == base
    assert revision(_spec_variant(body, autoscaling={"maxReplicas": 50})) == base
    assert revision(_spec_variant(body, service={"type": "NodePort", "port": 81})) == base
    assert revision(_spec_variant(body, networkPolicy={"enabled": False})) == base
    assert revision(_spec_variant(body, rollout={"progressDeadlineSeconds": 31})) == base
    assert revision(_spec_variant(body, image="ghcr.io/paydeck/payment-runtime:9.9.9")) != base
    assert revision(_spec_variant(body, env=[{"name": "NEW", "value": "1"}])) != base
    assert revision(_spec_variant(body, resources={"requests": {"cpu": "2"}})) != base
    database = body["spec"]["database"]
    no_migrations = {**database, "migrations": {"enabled": False}}
    # Migrations run in a Job, not in the pods: switching them off changes no pod.
    assert revision(_spec_variant(body, database=no_migrations)) == base
