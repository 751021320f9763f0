"""The install bundle and the Helm chart against the real local API server.

The CRDs from crds/ are applied for real; the bundle and the rendered chart must pass a
server-side dry run (schema, defaulting and admission, including Pod Security for the operator
pod, and the admission policies' type checks); the chart must lint, reject bad values and
render one Role per watched namespace in namespaced mode; and once the RBAC is applied for real
the operator's ServiceAccount can do nothing on Secrets, pods or RBAC.  That the rules are
enough, and each one needed, is proved by running the operator with them (tests/e2e/test_rbac).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from hack import tools
from hack.cluster import wait_established
from tests.fixtures.cluster import KubeCluster
from tests.unit.packaging import bundle as b
from tests.unit.packaging.test_install_bundle import assert_restricted_operator_pod

pytestmark = pytest.mark.integration

KUBE_VERSION = tools.KUBERNETES_VERSION.removeprefix("v")
SA_USER = f"system:serviceaccount:{b.NAMESPACE}:{b.SERVICE_ACCOUNT}"
SA_GROUPS = ["system:serviceaccounts", f"system:serviceaccounts:{b.NAMESPACE}",
             "system:authenticated"]
CRD_NAMES = (
    "paymentservices.paydeck.dev",
    "paymentservicepolicies.paydeck.dev",
    "clusterkopfpeerings.kopf.dev",
    "kopfpeerings.kopf.dev",
)


@pytest.fixture(scope="module")
def helm() -> Path:
    return tools.binary("helm")


def render(helm: Path, *sets: str, namespace: str = b.NAMESPACE) -> str:
    args = [str(helm), "template", "paydeck", str(b.CHART), "--namespace", namespace,
            "--kube-version", KUBE_VERSION]
    for value in sets:
        args += ["--set", value]
    result = subprocess.run(args, text=True, capture_output=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def crds(cluster: KubeCluster) -> None:
    """Every CRD of crds/, applied for real and Established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(b.CRDS))
    wait_established(cluster.kubectl, CRD_NAMES)


@pytest.fixture(scope="module")
def operator_namespace(cluster: KubeCluster, crds: None) -> Iterator[str]:
    """The bundle's namespace, created for real (namespaced dry runs need it); RBAC cleanup."""
    cluster.kubectl("apply", "-f", str(b.INSTALL / "00-namespace.yaml"))
    yield b.NAMESPACE
    cluster.kubectl("delete", "-f", str(b.INSTALL / "01-rbac.yaml"), "--ignore-not-found",
                    check=False)
    cluster.kubectl("delete", "namespace", b.NAMESPACE, "--ignore-not-found",
                    "--timeout=60s", check=False)


def dry_run(cluster: KubeCluster, manifest: str | None = None, *files: Path
            ) -> subprocess.CompletedProcess[str]:
    args = ["apply", "--dry-run=server"]
    args += [f"--filename={f}" for f in files] or ["-f", "-"]
    result = cluster.kubectl(*args, input=manifest, check=False)
    assert result.returncode == 0, result.stderr
    return result


def test_install_bundle_passes_server_dry_run(cluster: KubeCluster,
                                              operator_namespace: str) -> None:
    result = dry_run(cluster, None, b.INSTALL)
    applied = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(b.bundle()), result.stdout
    for expected in ("clusterrole.rbac.authorization.k8s.io/paydeck-operator",
                     "clusterkopfpeering.kopf.dev/paydeck",
                     "deployment.apps/paydeck-operator",
                     "service/paydeck-operator-metrics"):
        assert any(line.startswith(expected) for line in applied), result.stdout


def operator_pod(deployment: dict[str, Any], namespace: str) -> dict[str, Any]:
    template = deployment["spec"]["template"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "pss-check", "namespace": namespace,
                         "labels": template["metadata"]["labels"]},
            "spec": template["spec"]}


def create_pod_dry_run(cluster: KubeCluster, pod: dict[str, Any]
                       ) -> subprocess.CompletedProcess[str]:
    # ServiceAccount admission needs the ServiceAccount to exist even for a dry run.
    pod = {**pod, "spec": {**pod["spec"], "serviceAccountName": "default"}}
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n",
                    pod["metadata"]["namespace"], "--timeout=30s")
    return cluster.kubectl("create", "--dry-run=server", "-f", "-",
                           input=yaml.safe_dump(pod), check=False)


def test_operator_pod_is_admitted_by_restricted_pod_security(cluster: KubeCluster,
                                                             operator_namespace: str) -> None:
    pod = operator_pod(b.one(b.bundle(), "Deployment"), operator_namespace)
    admitted = create_pod_dry_run(cluster, pod)
    assert admitted.returncode == 0, admitted.stderr

    # Control: the namespace really enforces `restricted` (so the check above means something).
    container = dict(pod["spec"]["containers"][0])
    container["securityContext"] = {**container["securityContext"],
                                    "allowPrivilegeEscalation": True}
    weakened = {**pod, "spec": {**pod["spec"], "containers": [container]}}
    rejected = create_pod_dry_run(cluster, weakened)
    assert rejected.returncode != 0
    assert "violates PodSecurity" in rejected.stderr and "restricted" in rejected.stderr


#: The operator's admin client over SASL_SSL with mutual TLS: two Secret volumes in its pod.
KAFKA_ADMIN_SASL_SSL = (
    "kafkaAdmin.securityProtocol=SASL_SSL", "kafkaAdmin.tls.secretName=kafka-admin-ca",
    "kafkaAdmin.tls.clientCertificate=true", "kafkaAdmin.sasl.secretName=kafka-admin-login",
)


def test_operator_pod_with_kafka_admin_secrets_is_admitted_by_restricted_pod_security(
        cluster: KubeCluster, operator_namespace: str, helm: Path) -> None:
    docs = [d for d in yaml.safe_load_all(render(helm, *KAFKA_ADMIN_SASL_SSL)) if d]
    pod = operator_pod(b.one(docs, "Deployment"), operator_namespace)
    assert {v["name"] for v in pod["spec"]["volumes"]} == {
        "tmp", "kafka-admin-tls", "kafka-admin-sasl"}
    admitted = create_pod_dry_run(cluster, pod)
    assert admitted.returncode == 0, admitted.stderr


@pytest.mark.parametrize(
    "values",
    [
        (),
        ("namespace.create=true", "fullnameOverride=paydeck-operator"),
        ("watchNamespaces={paydeck-system,default}", "replicaCount=1", "peering.priority=100",
         "operator.verbose=true", "metrics.service.enabled=false"),
        KAFKA_ADMIN_SASL_SSL,
    ],
    ids=["defaults", "own-namespace", "namespaced-peering", "kafka-admin-sasl-ssl"],
)
def test_helm_template_passes_server_dry_run(cluster: KubeCluster, operator_namespace: str,
                                             helm: Path, values: tuple[str, ...]) -> None:
    manifest = render(helm, *values)
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    roles = {"Role", "RoleBinding"} if any("watchNamespaces" in v for v in values) else {
        "ClusterRole", "ClusterRoleBinding"}
    assert {d["kind"] for d in docs} >= {"ServiceAccount", "Deployment",
                                         "ValidatingAdmissionPolicy", "PaymentServicePolicy",
                                         *roles}
    result = dry_run(cluster, manifest)
    applied = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(docs), result.stdout


def _without_labels(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "metadata": {k: v for k, v in doc["metadata"].items() if k != "labels"}}


def test_helm_chart_grants_the_same_rbac_and_pod_as_the_bundle(helm: Path) -> None:
    docs = [d for d in yaml.safe_load_all(render(helm, "fullnameOverride=paydeck-operator"))
            if d]
    bundle = b.bundle()
    assert b.permissions(b.one(docs, "ClusterRole")) == b.permissions(
        b.one(bundle, "ClusterRole"))
    deployment = b.one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert_restricted_operator_pod(deployment, image="ghcr.io/paydeck/payment-operator:0.1.0")
    assert b.one(docs, "ClusterKopfPeering")["metadata"]["name"] == "paydeck"


def test_helm_chart_ships_the_same_admission_policies_as_the_bundle(helm: Path) -> None:
    docs = [d for d in yaml.safe_load_all(render(helm, "fullnameOverride=paydeck-operator"))
            if d]
    kinds = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
             "PaymentServicePolicy")
    chart = sorted((_without_labels(d) for d in docs if d["kind"] in kinds),
                   key=lambda d: (d["kind"], d["metadata"]["name"]))
    bundle = sorted((_without_labels(d) for d in b.bundle() if d["kind"] in kinds),
                    key=lambda d: (d["kind"], d["metadata"]["name"]))
    assert len(chart) == 5
    assert chart == bundle


def test_helm_renders_a_role_and_kopf_peering_per_watched_namespace(helm: Path) -> None:
    docs = [d for d in yaml.safe_load_all(render(helm, "watchNamespaces={shop,bank}")) if d]
    by_kind: dict[str, list[str]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d["metadata"].get("namespace", ""))
    assert sorted(by_kind["KopfPeering"]) == sorted(by_kind["Role"]) == ["bank", "shop"]
    assert sorted(by_kind["RoleBinding"]) == ["bank", "shop"]
    # Cluster-wide, only reading the platform's PaymentServicePolicy.
    assert b.permissions(b.one(docs, "ClusterRole")) == {
        ("paydeck.dev", "paymentservicepolicies", "get", ("paydeck-payment-operator",))}
    # The Role grants what the cluster-wide ClusterRole does, on the namespaced peering, and
    # without the CRD watch (the operator turns Kopf's scanning off for exact namespaces).
    cluster_wide = b.permissions(b.one([d for d in yaml.safe_load_all(render(helm)) if d],
                                       "ClusterRole"))
    expected = {(g, "kopfpeerings" if r == "clusterkopfpeerings" else r, v, n)
                for g, r, v, n in cluster_wide
                if g != "apiextensions.k8s.io" and r != "paymentservicepolicies"}
    for role in (d for d in docs if d["kind"] == "Role"):
        assert b.permissions(role) == expected
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "paydeck-payment-operator",
                                    "namespace": b.NAMESPACE}]
    container = b.one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["--namespace=shop", "--namespace=bank"]
    assert "PAYDECK_NAMESPACES" not in {e["name"] for e in container["env"]}


def test_helm_lint_passes(helm: Path) -> None:
    result = subprocess.run(
        [str(helm), "lint", str(b.CHART), "--strict", "--kube-version", KUBE_VERSION],
        text=True, capture_output=True, check=False, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("replicaCount=two", "replicaCount"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("peering.priority=5", "peering.priority must stay null"),
        ("watchNamespaces={shop,kube-system}", "kube-system is a protected namespace"),
        ("platformPolicy.rules.images.allowedPrefixes={registry.example}", "allowedPrefixes"),
    ],
)
def test_helm_rejects_bad_values(helm: Path, value: str, error: str) -> None:
    result = subprocess.run(
        [str(helm), "template", "paydeck", str(b.CHART), "--kube-version", KUBE_VERSION,
         "--set", value],
        text=True, capture_output=True, check=False, timeout=120,
    )
    assert result.returncode != 0
    assert error in result.stderr


# -- the operator's permissions, with the RBAC really applied -----------------------------------


@pytest.fixture(scope="module")
def rbac(cluster: KubeCluster, operator_namespace: str) -> None:
    cluster.kubectl("apply", "-f", str(b.INSTALL / "01-rbac.yaml"))


def can_i(cluster: KubeCluster, *args: str) -> bool:
    result = cluster.kubectl("auth", "can-i", *args, f"--as={SA_USER}", check=False)
    answer = result.stdout.strip()
    assert answer in {"yes", "no"}, result.stdout + result.stderr
    return answer == "yes"


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (("patch", "paymentservices.paydeck.dev", "--subresource=status", "-n", "shop"), True),
        (("update", "paymentservices.paydeck.dev", "--subresource=status", "-A"), False),
        (("update", "deployments.apps", "-n", "shop"), False),
        (("watch", "paymentservices.paydeck.dev", "-A"), True),
        (("create", "deployments.apps", "-n", "shop"), True),
        (("delete", "networkpolicies.networking.k8s.io", "-n", "shop"), True),
        (("create", "jobs.batch", "-n", "shop"), True),  # the migration Job
        (("delete", "jobs.batch", "-n", "shop"), True),  # retry of a failed one
        (("update", "jobs.batch", "-n", "shop"), False),
        (("create", "events", "-n", "shop"), True),
        (("patch", "clusterkopfpeerings.kopf.dev/paydeck"), True),
        (("patch", "clusterkopfpeerings.kopf.dev/another"), False),
        (("patch", "kopfpeerings.kopf.dev", "-n", "shop"), False),
        (("get", "secrets", "-n", "shop"), False),
        (("list", "secrets", "-A"), False),
        (("watch", "secrets", "-n", b.NAMESPACE), False),
        (("create", "paymentservices.paydeck.dev", "-n", "shop"), False),
        (("delete", "paymentservices.paydeck.dev", "-n", "shop"), False),
        (("create", "pods", "-n", "shop"), False),
        (("list", "namespaces"), False),
        (("create", "clusterroles.rbac.authorization.k8s.io"), False),
        (("delete", "namespaces"), False),
        (("get", "paymentservicepolicies.paydeck.dev"), False),
        (("get", "paymentservicepolicies.paydeck.dev/paydeck-operator"), True),
        (("patch", "paymentservicepolicies.paydeck.dev/paydeck-operator"), False),
        (("patch", "validatingadmissionpolicies.admissionregistration.k8s.io"), False),
    ],
)
def test_operator_service_account_can_i(cluster: KubeCluster, rbac: None,
                                        args: tuple[str, ...], allowed: bool) -> None:
    assert can_i(cluster, *args) is allowed


def _allowed(api: client.AuthorizationV1Api, group: str, resource: str, verb: str) -> bool:
    name, _, sub = resource.partition("/")
    review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=SA_USER, groups=SA_GROUPS,
        resource_attributes=client.V1ResourceAttributes(
            group=group, resource=name, subresource=sub or None, verb=verb,
            namespace=None if name.startswith("cluster") else "shop",
        ),
    ))
    return bool(api.create_subject_access_review(review).status.allowed)


def test_bundle_rbac_is_granted_and_nothing_on_secrets_pods_or_rbac(cluster: KubeCluster,
                                                                      rbac: None) -> None:
    api = client.AuthorizationV1Api(cluster.api())
    granted = b.permissions(b.one(b.bundle(), "ClusterRole"))
    assert [p for p in sorted(granted) if not p[3] and not _allowed(api, *p[:3])] == []
    all_verbs = ("get", "list", "watch", "create", "update", "patch", "delete",
                 "deletecollection")
    for group, resource, verb in [("", "secrets", v) for v in all_verbs] + [
        ("paydeck.dev", "paymentservices", "deletecollection"),
        ("", "pods", "watch"),  # pods are read (waiting reasons), never watched or written
        ("", "pods", "create"),
        ("", "pods", "delete"),
        ("", "pods/exec", "create"),
        ("", "pods/log", "get"),
        ("", "nodes", "get"),
        ("", "serviceaccounts/token", "create"),
        ("rbac.authorization.k8s.io", "clusterroles", "escalate"),
        ("rbac.authorization.k8s.io", "rolebindings", "create"),
        ("kopf.dev", "clusterkopfpeerings", "delete"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings", "delete"),
    ]:
        assert not _allowed(api, group, resource, verb), (group, resource, verb)


def test_can_i_list_shows_nothing_on_secrets(cluster: KubeCluster, rbac: None) -> None:
    result = cluster.kubectl("auth", "can-i", "--list", "-n", "shop", f"--as={SA_USER}")
    resources = [line.split()[0] for line in result.stdout.splitlines()[1:] if line.strip()]
    assert "paymentservices.paydeck.dev/status" in resources
    assert not [r for r in resources if r.split(".")[0].split("/")[0] == "secrets"]
