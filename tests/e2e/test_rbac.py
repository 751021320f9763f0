"""The operator with exactly the chart's RBAC and admission policies, once per install mode.

The chart is rendered for the mode (cluster-wide, or namespaced with ``watchNamespaces``) and
its ServiceAccount, (Cluster)Roles, bindings, peering object, confinement policy and platform
policy are applied for real.  The operator then runs as that ServiceAccount itself: its
kubeconfig holds a token from the TokenRequest API, so the API server authorizes every request
with the chart's rules only and the confinement policy applies to each write.  It runs with
the arguments and environment of the chart's Deployment (peering included).

The journey needs every rule and verb: a PaymentService with every kind of child (a migration
Job, Ingress, HorizontalPodAutoscaler, ServiceMonitor and PrometheusRule, ExternalSecret and
SecretStore, a KafkaTopic in the Strimzi cluster's namespace, owned by labels ...) becomes
Healthy; the platform narrows its PaymentServicePolicy
and the operator's own check refuses to go on (naming the rule) until it is widened again; new
images and fewer features roll new revisions, switch to the CSI driver and then to plain
Secrets, and prune every kind that can become unwanted (the first revision's Deployment and Job
too); deleting it releases the finalizer.  Kopf logs a forbidden watch and
carries on, so any "forbidden" in the operator's log fails the test too: removing any one rule
from templates/rbac.yaml makes this test fail (``python -m tests.e2e.rbac_mutations`` proves
it, in a scratch copy).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.cluster import wait_established
from tests.e2e import secrets as pod_secrets
from tests.e2e.conftest import (
    OperatorProcess,
    condition,
    get_json,
    play_sync_controllers,
    wait_for,
)
from tests.fixtures.cluster import KubeCluster
from tests.unit.packaging import bundle as b

pytestmark = pytest.mark.e2e

#: What the chart installs besides the operator's Deployment and Service (the operator runs
#: here as a local process, with that Deployment's arguments and environment).
INSTALLED = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
             "ClusterKopfPeering", "KopfPeering", "PaymentServicePolicy",
             "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
NAME = "pay"
RATES = "fx-rates"  # the user's rate-table ConfigMap (spec.currencies)
IMAGE_1 = "registry.example/payment-runtime:1"
IMAGE_2 = "registry.example/payment-runtime:2"
IMAGE_3 = "registry.example/payment-runtime:3"
IMAGE_4 = "registry.example/payment-runtime:4"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "0e3f1a2b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
LABEL = "paydeck.dev/e2e-rbac"
FORBIDDEN = re.compile(r"forbidden|not enough permissions", re.IGNORECASE)


def values(token: str, watched: list[str]) -> dict[str, Any]:
    return {
        "fullnameOverride": f"rbac-{token}",
        "watchNamespaces": watched,
        "peering": {"name": f"rbac-{token}"},
        "platformPolicy": {
            "namespaceSelector": {"matchLabels": {LABEL: token}},
            "rules": {
                "images": {"allowedPrefixes": ["registry.example/"]},
                "ingress": {"hostSuffixes": [".e2e.example"],
                            "allowedAnnotations": ["cert-manager.io/"]},
                "identity": {"azureClientIds": [CLIENT_ID]},
            },
        },
    }


def spec(image: str = IMAGE_1, *, backend: str | None = "external-secrets",
         extras: bool = True) -> dict[str, Any]:
    """Every kind of child; without ``extras`` no Ingress, autoscaler, monitoring, Kafka topic
    or NetworkPolicy; without ``backend`` the secrets come from plain Secrets."""
    body: dict[str, Any] = {
        "image": image,
        "replicas": 2,
        "stripe": {"secretKey": {"secretRef": {"name": "stripe", "key": "key"}}},
        "database": {"url": {"secretRef": {"name": "db", "key": "url"}}},
        "podDisruptionBudget": {"maxUnavailable": 1},
    }
    if backend is not None:
        body["stripe"] = {"secretKey": {"storeObject": "STRIPE_SECRET_KEY"}}
        body["database"] = {"url": {"storeObject": "DATABASE_URL"}}
        body["secretStore"] = {
            "backend": backend, "provider": "azure-keyvault",
            "azure": {"vaultName": "kv-pay", "tenantId": TENANT, "clientId": CLIENT_ID},
            "objects": [{"name": "DATABASE_URL", "remoteRef": "db-url"},
                        {"name": "STRIPE_SECRET_KEY", "remoteRef": "stripe-key"}],
        }
    if not extras:
        body["networkPolicy"] = {"enabled": False}
    else:
        body["kafka"] = {"bootstrapServers": "kafka:9092", "topicProvisioner": "strimzi",
                         "strimzi": {"clusterName": "local"},
                         "topics": [{"name": "payment.events"}]}
        body["autoscaling"] = {"minReplicas": 2, "maxReplicas": 3}
        body["ingress"] = {"host": "pay.e2e.example",
                           "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"}}
        body["monitoring"] = {"serviceMonitor": True, "dashboard": True}
        body["currencies"] = {"reporting": "EUR",
                              "ratesConfigMap": {"name": RATES, "key": "rates.json"}}
    return body


def kafka_namespace(namespace: str) -> str:
    """The Strimzi cluster's namespace of the journey's KafkaTopics (owned by labels there)."""
    return f"{namespace}-kafka"


def payment_service(namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    if "strimzi" in body.get("kafka", {}):
        body = {**body, "kafka": {**body["kafka"], "strimzi": {
            **body["kafka"]["strimzi"], "namespace": kafka_namespace(namespace)}}}
    return {"apiVersion": "paydeck.dev/v1alpha1", "kind": "PaymentService",
            "metadata": {"name": NAME, "namespace": namespace}, "spec": body}


def apply(cluster: KubeCluster, obj: dict[str, Any]) -> None:
    pod_secrets.create_for(cluster, obj["metadata"]["namespace"], obj)
    cluster.kubectl("apply", "--server-side", "--field-manager=gitops", "-f", "-",
                    input=json.dumps(obj))


def service_account_kubeconfig(cluster: KubeCluster, namespace: str, name: str,
                               path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount itself (a bound token)."""
    token = cluster.kubectl("create", "token", name, "-n", namespace,
                            "--duration=2h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server = admin["clusters"][0]
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "clusters": [server],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": server["name"], "user": name}}],
        "current-context": name,
    }))
    return path


def operator_process(kubeconfig: Path, docs: list[dict[str, Any]]) -> OperatorProcess:
    """The operator with the chart Deployment's arguments and environment (not its ports)."""
    [container] = b.one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["payment-operator"]
    env = {e["name"]: e["value"] for e in container["env"]
           if e["name"] not in ("PAYDECK_LIVENESS_PORT", "PAYDECK_METRICS_PORT")}
    return OperatorProcess(kubeconfig, tuple(container.get("args", ())), env)


def enforced(cluster: KubeCluster, docs: list[dict[str, Any]], namespace: str) -> bool:
    """Both policies reject what they must (the API server loads policies asynchronously)."""
    sa = b.one(docs, "ServiceAccount")["metadata"]
    bad_ps = payment_service(namespace, {**spec(), "image": "elsewhere.example/x:1"})
    rejected_ps = cluster.kubectl("create", "--dry-run=server", "-f", "-",
                                  input=json.dumps(bad_ps), check=False)
    unlabelled = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "probe", "namespace": namespace}}
    # As the ServiceAccount's name with the admin group: whatever the chart's RBAC grants.
    rejected_cm = cluster.kubectl(
        "create", "--dry-run=server", "-f", "-",
        f"--as=system:serviceaccount:{sa['namespace']}:{sa['name']}", "--as-group=system:masters",
        input=json.dumps(unlabelled), check=False)
    return ("images.allowedPrefixes" in rejected_ps.stderr
            and "paydeck operator policy" in rejected_cm.stderr)


def forbidden_lines(op: OperatorProcess) -> list[str]:
    return [line for line in op.log.read_text(errors="replace").splitlines()
            if FORBIDDEN.search(line)]


def unless_forbidden(op: OperatorProcess, check):
    """``check``, failing at once when the operator was refused anything (a missing rule)."""
    def inner():
        refused = forbidden_lines(op)
        assert refused == [], "\n".join(refused[:5])
        return check()
    return inner


def healthy(cluster: KubeCluster, namespace: str, image: str):
    def check():
        play_sync_controllers(cluster, namespace)  # External Secrets and Strimzi, played
        play_sync_controllers(cluster, kafka_namespace(namespace))
        obj = get_json(cluster, "paysvc", NAME, "-n", namespace)
        status = (obj or {}).get("status", {})
        assert "forbidden" not in status.get("message", "").lower(), status["message"]
        ok = (status.get("phase") == "Healthy" and status.get("stableImage") == image
              and status.get("observedGeneration") == obj["metadata"]["generation"])
        return obj if ok else None
    return check


def gone(cluster: KubeCluster, kind: str, namespace: str, name: str = NAME):
    return lambda: get_json(cluster, kind, name, "-n", namespace) is None


def nudge(cluster: KubeCluster, namespace: str) -> None:
    """A metadata change: Kopf's update handler runs, no admission rule is involved."""
    cluster.kubectl("annotate", "paysvc", NAME, "-n", namespace, "--overwrite",
                    f"e2e.paydeck.dev/nudged={time.monotonic_ns()}")


def refused_by_policy(cluster: KubeCluster, namespace: str):
    def check():
        obj = get_json(cluster, "paysvc", NAME, "-n", namespace)
        return condition(obj, "Degraded").get("reason") == "PolicyViolation" and obj
    return check


def journey(cluster: KubeCluster, namespace: str, op: OperatorProcess, policy: str) -> None:
    # The user's rate table (spec.currencies): the operator may read it, never write it.
    cluster.kubectl("create", "configmap", RATES, "-n", namespace,
                    '--from-literal=rates.json={"USD": "0.92"}')
    apply(cluster, payment_service(namespace, spec()))
    wait_for(unless_forbidden(op, healthy(cluster, namespace, IMAGE_1)), 120,
             "the first revision Healthy", op)
    assert not pod_secrets.missing(cluster, namespace)  # kwok would run pods without them
    assert get_json(cluster, "configmap", f"{NAME}-config", "-n", namespace)
    assert get_json(cluster, "configmap", f"{NAME}-dashboard", "-n", namespace)
    for kind in ("serviceaccount", "service", "networkpolicy", "ingress",
                 "poddisruptionbudget", "horizontalpodautoscaler",
                 "servicemonitors.monitoring.coreos.com",
                 "prometheusrules.monitoring.coreos.com",
                 "externalsecrets.external-secrets.io", "secretstores.external-secrets.io"):
        assert get_json(cluster, kind, NAME, "-n", namespace), kind
    topic = f"{namespace}.{NAME}-payment.events"
    assert get_json(cluster, "kafkatopics.kafka.strimzi.io", topic,
                    "-n", kafka_namespace(namespace))
    [job] = get_json(cluster, "jobs", "-n", namespace)["items"]
    assert job["metadata"]["name"].startswith(f"{NAME}-migrate-")

    # The platform narrows its policy: admission has no say over what exists, the operator's
    # own check has. It applies nothing more and says which rule, until the policy allows it.
    def set_prefixes(prefixes: list[str]) -> None:
        cluster.kubectl("patch", "paymentservicepolicy", policy, "--type=merge",
                        "-p", json.dumps({"spec": {"images": {"allowedPrefixes": prefixes}}}))
    set_prefixes(["registry.example/elsewhere/"])
    nudge(cluster, namespace)
    obj = wait_for(unless_forbidden(op, refused_by_policy(cluster, namespace)), 30,
                   "the operator's policy check to refuse", op)
    assert "platform policy images.allowedPrefixes" in condition(obj, "Degraded")["message"]
    set_prefixes(["registry.example/"])
    nudge(cluster, namespace)
    wait_for(unless_forbidden(op, healthy(cluster, namespace, IMAGE_1)), 60,
             "Healthy again once the policy allows it", op)

    # A new revision, and fewer features: the CSI driver instead of External Secrets, no
    # Ingress, autoscaler, monitoring, Kafka topic or NetworkPolicy (once the API server has
    # the restored policy too).
    second = json.dumps(payment_service(namespace, spec(IMAGE_2, backend="csi", extras=False)))
    wait_for(lambda: cluster.kubectl("apply", "--server-side", "--field-manager=gitops", "-f",
                                     "-", input=second, check=False).returncode == 0,
             30, "the second revision admitted", op)
    wait_for(unless_forbidden(op, healthy(cluster, namespace, IMAGE_2)), 120,
             "the second revision Healthy", op)
    assert get_json(cluster, "secretproviderclasses.secrets-store.csi.x-k8s.io", NAME,
                    "-n", namespace)
    for kind in ("ingress", "horizontalpodautoscaler", "servicemonitors.monitoring.coreos.com",
                 "prometheusrules.monitoring.coreos.com", "externalsecrets.external-secrets.io",
                 "secretstores.external-secrets.io", "networkpolicy"):
        wait_for(unless_forbidden(op, gone(cluster, kind, namespace)), 60, f"{kind} pruned", op)
    wait_for(unless_forbidden(op, gone(cluster, "kafkatopics.kafka.strimzi.io",
                                       kafka_namespace(namespace), topic)),
             60, "the topic pruned", op)
    wait_for(unless_forbidden(op, gone(cluster, "configmap", namespace, f"{NAME}-dashboard")),
             60, "the dashboard ConfigMap pruned", op)
    assert get_json(cluster, "configmap", RATES, "-n", namespace)  # the user's, untouched
    assert len(get_json(cluster, "jobs", "-n", namespace)["items"]) == 2

    # Plain Secrets: the SecretProviderClass goes.  A fourth revision: the first one's
    # Deployment and Job go (two old revisions are kept).
    apply(cluster, payment_service(namespace, spec(IMAGE_3, backend=None, extras=False)))
    wait_for(unless_forbidden(op, healthy(cluster, namespace, IMAGE_3)), 120,
             "the third revision Healthy", op)
    wait_for(unless_forbidden(op, gone(cluster, "secretproviderclasses.secrets-store.csi.x-k8s.io",
                                       namespace)), 60, "the SecretProviderClass pruned", op)
    first = {d["metadata"]["name"] for d in get_json(cluster, "deployments", "-n", namespace)[
        "items"] if d["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE_1}
    apply(cluster, payment_service(namespace, spec(IMAGE_4, backend=None, extras=False)))
    wait_for(unless_forbidden(op, healthy(cluster, namespace, IMAGE_4)), 120,
             "the fourth revision Healthy", op)
    [deployment] = first
    wait_for(unless_forbidden(op, gone(cluster, "deployment", namespace, deployment)), 60,
             "the first revision's Deployment pruned", op)
    job = f"{NAME}-migrate-{deployment.removeprefix(f'{NAME}-')}"
    wait_for(unless_forbidden(op, gone(cluster, "job", namespace, job)), 60,
             "the first revision's Job pruned", op)

    cluster.kubectl("delete", "paysvc", NAME, "-n", namespace, "--wait=false")
    wait_for(unless_forbidden(op, gone(cluster, "paysvc", namespace)), 60,
             "the finalizer released", op)


def wait_for_terminating_namespaces(cluster: KubeCluster, timeout: float = 120) -> None:
    """Earlier tests' namespaces are gone (their finalizers need the session operator)."""
    deadline = time.monotonic() + timeout
    while ("Terminating" in cluster.kubectl("get", "namespaces").stdout
           and time.monotonic() < deadline):
        time.sleep(1)


@pytest.mark.parametrize("mode", ["cluster-wide", "namespaced"])
def test_the_operator_needs_exactly_the_charts_rbac(cluster, crd, third_party_crds, operator,
                                                     tmp_path, mode):
    token = "t" + secrets.token_hex(3)  # never all digits (YAML would read a number)
    operator_ns, app_ns, other_ns = (f"rbac-{part}-{token}" for part in ("op", "app", "other"))
    kafka_ns = kafka_namespace(app_ns)
    namespaced = mode == "namespaced"
    docs = b.rendered(values(token, [app_ns, kafka_ns] if namespaced else []),
                      namespace=operator_ns, release="rbac")
    installed = [d for d in docs if d["kind"] in INSTALLED]
    if namespaced:  # cluster-wide only the platform's PaymentServicePolicy, read
        assert {d["kind"] for d in installed} >= {"Role", "RoleBinding", "KopfPeering"}
        assert {(r, v) for _, r, v, _ in b.permissions(b.one(installed, "ClusterRole"))} == {
            ("paymentservicepolicies", "get")}
    else:
        assert {d["kind"] for d in installed} >= {"ClusterRole", "ClusterKopfPeering"}
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(b.CRDS))
    wait_established(cluster.kubectl, ["paymentservicepolicies.paydeck.dev",
                                       "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"])
    for ns in (operator_ns, app_ns, other_ns, kafka_ns):
        cluster.kubectl("create", "namespace", ns)
        cluster.kubectl("label", "namespace", ns, f"{LABEL}={token}")
    op: OperatorProcess | None = None
    paused = False
    try:
        cluster.kubectl("apply", "--server-side", "--field-manager=helm", "-f", "-",
                        input="\n---\n".join(json.dumps(d) for d in installed))
        wait_for(lambda: enforced(cluster, docs, app_ns), 30, "both policies enforced")
        sa = b.one(docs, "ServiceAccount")["metadata"]["name"]
        kubeconfig = service_account_kubeconfig(cluster, operator_ns, sa,
                                                tmp_path / "kubeconfig")
        wait_for_terminating_namespaces(cluster)
        operator.stop()  # the session's operator (admin, every namespace) must not help
        paused = True
        op = operator_process(kubeconfig, docs)
        op.start()
        if namespaced:
            # A PaymentService outside the watched namespaces is none of its business.
            apply(cluster, payment_service(other_ns, spec(extras=False)))
        journey(cluster, app_ns, op, b.one(docs, "PaymentServicePolicy")["metadata"]["name"])
        if namespaced:
            outside = get_json(cluster, "paysvc", NAME, "-n", other_ns)
            assert not outside.get("status") and not outside["metadata"].get("finalizers")
            assert get_json(cluster, "serviceaccount", NAME, "-n", other_ns) is None
        assert forbidden_lines(op) == [], op.tail()
    finally:
        if op is not None:
            op.stop()
        for ns in (app_ns, other_ns, kafka_ns, operator_ns):
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        for doc in installed:
            if "namespace" not in doc["metadata"]:
                cluster.kubectl("delete", doc["kind"], doc["metadata"]["name"],
                                "--ignore-not-found", check=False)
        if paused:
            operator.start()
        if op is not None:
            op.log.unlink(missing_ok=True)
