"""The operator against the real local control plane: children, readiness, drift, GC, failures."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import yaml

from tests.e2e import secrets
from tests.e2e.conftest import condition, get_json, play_sync_controllers, wait_for

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "samples"
CORE_CHILDREN = [
    ("serviceaccount", "{name}"),
    ("configmap", "{name}-config"),
    ("deployment", "{name}-{rev}"),  # the stable revision's
    ("service", "{name}"),
    ("networkpolicy", "{name}"),
]


def _rev(cluster, namespace, name) -> str:
    return get_json(cluster, "paysvc", name, "-n", namespace)["status"]["stableRevision"]


def _sample(name: str) -> dict:
    return yaml.safe_load((SAMPLES / f"{name}.yaml").read_text())


def _apply(cluster, namespace: str, obj: dict) -> None:
    secrets.create_for(cluster, namespace, obj)
    cluster.kubectl("apply", "--server-side", "--field-manager=gitops", "-n", namespace,
                    "-f", "-", input=json.dumps(obj))


def _ready(cluster, namespace, name):
    obj = get_json(cluster, "paysvc", name, "-n", namespace)
    cond = condition(obj, "Ready")
    ok = (cond.get("status") == "True"
          and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
          and cond.get("observedGeneration") == obj["metadata"]["generation"])
    if ok:  # kwok runs any pod: on a real node these would wait for their Secrets
        assert not secrets.missing(cluster, namespace), secrets.missing(cluster, namespace)
    return obj if ok else None


def test_full_sample_on_a_bare_cluster_says_which_api_is_missing(cluster, namespace, operator):
    """No External Secrets or Strimzi API here: the gates stay closed, nothing claims Healthy
    and no pod of the service exists (they would fail on a Secret nobody syncs)."""
    ps = _sample("full")
    name = ps["metadata"]["name"]
    _apply(cluster, namespace, ps)

    def gated():
        obj = get_json(cluster, "paysvc", name, "-n", namespace)
        ok = (condition(obj, "SecretsReady").get("status") == "False"
              and condition(obj, "TopicsReady").get("status") == "False")
        return obj if ok else None

    obj = wait_for(gated, 60, "closed gates", operator)
    status = obj["status"]
    served = cluster.kubectl("api-versions").stdout.split()
    secrets, topics = condition(obj, "SecretsReady"), condition(obj, "TopicsReady")
    if "external-secrets.io/v1" in served:  # an earlier test installed the CRDs; no controller
        assert secrets["reason"] == "NotSynced" and "not synced" in secrets["message"]
    else:
        assert secrets["reason"] == "ExternalSecretsAPIMissing"
        assert "install the External Secrets Operator" in secrets["message"]
    if "kafka.strimzi.io/v1" in served:
        assert topics["reason"] == "NotReady" and "payments-eu-payment.events" in topics["message"]
    else:
        assert topics["reason"] == "StrimziAPIMissing"
    assert status["phase"] == "Progressing" and condition(obj, "Ready")["status"] == "False"
    assert "SecretsReady" in status["message"] and "TopicsReady" in status["message"]
    for cond in status["conditions"]:
        assert isinstance(cond["observedGeneration"], int)
        assert cond["message"]
    # The children every cluster serves exist and are ours; no workload, no Job, no pod.
    for kind, pattern in [("serviceaccount", "{name}"), ("configmap", "{name}-config"),
                          ("service", "{name}"), ("networkpolicy", "{name}"),
                          ("horizontalpodautoscaler", "{name}"),
                          ("poddisruptionbudget", "{name}"), ("ingress", "{name}")]:
        child = get_json(cluster, kind, pattern.format(name=name), "-n", namespace)
        assert child is not None, f"{kind} missing"
        owners = child["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"], o["controller"]) for o in owners] == [
            ("PaymentService", name, True)]
    for kind in ("deployments", "jobs", "pods"):
        assert get_json(cluster, kind, "-n", namespace)["items"] == [], kind
    hpa = get_json(cluster, "hpa", name, "-n", namespace)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "paydeck.dev/v1alpha1", "kind": "PaymentService", "name": name}


def test_minimal_sample_becomes_ready_with_events(cluster, namespace, operator):
    ps = _sample("minimal")
    name = ps["metadata"]["name"]
    _apply(cluster, namespace, ps)
    obj = wait_for(lambda: _ready(cluster, namespace, name), 120, "Ready=True", operator)
    rev = obj["status"]["stableRevision"]
    for kind, pattern in CORE_CHILDREN:
        child = get_json(cluster, kind, pattern.format(name=name, rev=rev), "-n", namespace)
        assert child is not None, f"{kind} missing"
    assert obj["status"]["phase"] == "Healthy"
    assert obj["status"]["readyReplicas"] == 2 and obj["status"]["replicas"] == 2
    # Kopf's diff base is a digest, not a second copy of the spec in etcd.
    base = obj["status"]["kopf"]["last-handled-configuration"]
    assert len(base) < 100 and ps["spec"]["image"] not in base, base
    # kubectl wait, as an SRE or a pipeline would use it.
    cluster.kubectl("wait", "--for=condition=Ready", f"paysvc/{name}", "-n", namespace,
                    "--timeout=30s")

    def reasons() -> set[str]:
        return set(cluster.kubectl("get", "events", "-n", namespace,
                                   f"--field-selector=involvedObject.name={name}",
                                   "-o", "jsonpath={.items[*].reason}").stdout.split())

    # Kopf posts Events asynchronously, shortly after the status write that made it Ready.
    wanted = {"Created", "MigrationStarted", "MigrationSucceeded", "Promoted", "PhaseHealthy"}
    wait_for(lambda: wanted <= reasons(), 30, f"events {wanted}", operator)


def test_children_carry_no_cr_labels_and_spec_is_untouched(cluster, namespace, operator):
    ps = _sample("minimal")
    ps["metadata"]["labels"] = {"team": "payments", "argocd.argoproj.io/instance": "pay"}
    name = ps["metadata"]["name"]
    _apply(cluster, namespace, ps)
    before = get_json(cluster, "paysvc", name, "-n", namespace)
    after = wait_for(lambda: _ready(cluster, namespace, name), 120, "Ready", operator)
    assert json.dumps(after["spec"], sort_keys=True) == json.dumps(before["spec"], sort_keys=True)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    for entry in after["metadata"].get("managedFields", []):
        if entry["manager"] != "gitops":
            assert "f:spec" not in entry.get("fieldsV1", {}), entry["manager"]
    assert not any(k.startswith("kopf.zalando.org") for k in after["metadata"].get(
        "annotations", {}))
    rev = after["status"]["stableRevision"]
    for kind, pattern in CORE_CHILDREN:
        labels = get_json(cluster, kind, pattern.format(name=name, rev=rev), "-n", namespace)[
            "metadata"]["labels"]
        assert "team" not in labels and "argocd.argoproj.io/instance" not in labels


def test_drift_is_undone_quickly(cluster, namespace, operator):
    ps = _sample("minimal")
    name = ps["metadata"]["name"]
    _apply(cluster, namespace, ps)
    wait_for(lambda: _ready(cluster, namespace, name), 120, "Ready", operator)
    workload = f"{name}-{_rev(cluster, namespace, name)}"

    cluster.kubectl("scale", "deployment", workload, "-n", namespace, "--replicas=7")
    wait_for(lambda: get_json(cluster, "deployment", workload, "-n", namespace)["spec"][
        "replicas"] == 2, 10, "Deployment replicas restored", operator)

    svc = get_json(cluster, "service", name, "-n", namespace)
    port = svc["spec"]["ports"][0]["port"]
    cluster.kubectl("patch", "service", name, "-n", namespace, "--type=json", "-p",
                    json.dumps([{"op": "replace", "path": "/spec/ports/0/port",
                                 "value": port + 1}]))
    wait_for(lambda: get_json(cluster, "service", name, "-n", namespace)["spec"]["ports"][0][
        "port"] == port, 10, "Service port restored", operator)

    # A child that loses our labels leaves the children's (server-side selected) watches:
    # the operator still sees it go, and puts the labels back.
    config = f"{name}-config"
    cluster.kubectl("label", "configmap", config, "-n", namespace,
                    "app.kubernetes.io/managed-by-")
    wait_for(lambda: get_json(cluster, "configmap", config, "-n", namespace)["metadata"][
        "labels"].get("app.kubernetes.io/managed-by") == "paydeck-operator", 10,
        "ConfigMap labels restored", operator)

    for kind, child in (("networkpolicy", name), ("deployment", workload)):
        uid = get_json(cluster, kind, child, "-n", namespace)["metadata"]["uid"]
        cluster.kubectl("delete", kind, child, "-n", namespace, "--wait=false")
        wait_for(lambda kind=kind, child=child, uid=uid: (
            o := get_json(cluster, kind, child, "-n", namespace)) and o["metadata"]["uid"] != uid,
            10, f"{kind} recreated", operator)


def test_delete_removes_children_and_does_not_hang(cluster, namespace, operator):
    ps = _sample("minimal")
    name = ps["metadata"]["name"]
    _apply(cluster, namespace, ps)
    wait_for(lambda: _ready(cluster, namespace, name), 120, "Ready", operator)
    rev = _rev(cluster, namespace, name)
    assert "paydeck.dev/finalizer" in get_json(cluster, "paysvc", name, "-n", namespace)[
        "metadata"]["finalizers"]
    cluster.kubectl("delete", "paysvc", name, "-n", namespace, "--timeout=30s")
    for kind, pattern in CORE_CHILDREN:
        wait_for(lambda kind=kind, pattern=pattern: get_json(
            cluster, kind, pattern.format(name=name, rev=rev), "-n", namespace) is None,
            60, f"{kind} garbage-collected", operator)


def test_restricted_namespace_accepts_the_pods(cluster, namespace, operator, third_party_crds):
    cluster.kubectl("label", "namespace", namespace,
                    "pod-security.kubernetes.io/enforce=restricted", "--overwrite")
    ps = _sample("aws")
    ps["spec"]["kafka"]["topicProvisioner"] = "none"  # its MSK brokers do not exist here
    name = ps["metadata"]["name"]
    _apply(cluster, namespace, ps)
    # Its Secrets come from AWS Secrets Manager through the CSI driver (played by the test).
    obj = wait_for(lambda: play_sync_controllers(cluster, namespace)
                   and _ready(cluster, namespace, name), 120, "Ready", operator)
    assert obj["status"]["readyReplicas"] == ps["spec"].get("replicas", 2)
    # The migration Job's pod ran in the restricted namespace too.
    [job] = get_json(cluster, "jobs", "-n", namespace)["items"]
    assert job["status"].get("succeeded") == 1
    warnings = cluster.kubectl("get", "events", "-n", namespace,
                               "--field-selector=reason=FailedCreate", "-o", "name").stdout
    assert warnings.strip() == ""


def test_failing_api_call_degrades_then_recovers(cluster, namespace, operator):
    quota = {"apiVersion": "v1", "kind": "ResourceQuota",
             "metadata": {"name": "no-services"}, "spec": {"hard": {"services": "0"}}}
    _apply(cluster, namespace, quota)
    wait_for(lambda: (get_json(cluster, "resourcequota", "no-services", "-n", namespace)
                      or {}).get("status", {}).get("hard"), 30, "quota active")
    ps = _sample("minimal")
    name = ps["metadata"]["name"]
    _apply(cluster, namespace, ps)

    def degraded():
        obj = get_json(cluster, "paysvc", name, "-n", namespace)
        cond = condition(obj, "Degraded")
        return obj if cond.get("status") == "True" else None

    obj = wait_for(degraded, 60, "Degraded=True", operator)
    cond = condition(obj, "Degraded")
    assert cond["reason"] == "Forbidden"
    assert "quota" in cond["message"]
    assert obj["status"]["phase"] == "Degraded"
    assert condition(obj, "Stalled")["status"] == "True"
    assert operator.proc is not None and operator.proc.poll() is None  # no crash

    cluster.kubectl("delete", "resourcequota", "no-services", "-n", namespace)
    wait_for(lambda: _ready(cluster, namespace, name), 90, "recovery to Ready", operator)


def test_restart_mid_reconcile_converges(cluster, namespace, operator):
    ps = _sample("minimal")
    name = ps["metadata"]["name"]
    operator.stop(signal.SIGKILL)
    try:
        _apply(cluster, namespace, ps)
        operator.start()
        wait_for(lambda: get_json(cluster, "deployments", "-n", namespace)["items"], 60,
                 "the Deployment", operator)
        operator.stop(signal.SIGKILL)  # killed in the middle of the rollout
    finally:
        operator.start()
    obj = wait_for(lambda: _ready(cluster, namespace, name), 120, "Ready after restart",
                   operator)
    deployments = cluster.kubectl("get", "deployments", "-n", namespace, "-o", "name").stdout
    assert deployments.split() == [f"deployment.apps/{name}-{obj['status']['stableRevision']}"]
    assert len(get_json(cluster, "jobs", "-n", namespace)["items"]) == 1  # one per revision
    assert obj["status"]["readyReplicas"] == 2
