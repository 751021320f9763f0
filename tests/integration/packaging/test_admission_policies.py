"""The chart's admission policies, enforced by the real API server.

Each test renders the chart (``helm template``) under a release of its own and applies only
the objects it is about, so policies of other tests never apply.  The platform policy binds
to namespaces with a label of the test's own.

* Platform policy: a PaymentService that breaks a rule is rejected at ``kubectl apply`` with a
  message naming the rule (the PaymentServicePolicy field), and the operator's own check
  (:mod:`payment_operator.policy`) gives the same message; a compliant one is admitted (and
  passes the operator's check); a
  metadata-only write (the operator's finalizer) is admitted even when the policy was
  tightened since; without its params object every PaymentService is rejected.
* Operator confinement: as the operator's ServiceAccount (``kubectl --as``), every child the
  builders produce for a live PaymentService is admitted, and what the operator must never
  write is rejected: unlabelled, unowned or re-parented objects, pods under another
  ServiceAccount or with an API token, anything in kube-system, deleting a foreign object.
  Status patches, Events and finalizer patches by the ServiceAccount go through.
"""

from __future__ import annotations

import copy
import json
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config
from payment_operator import policy
from payment_operator.api import parse
from payment_operator.builders import Context, Workloads, revision, supporting, workloads

from hack.cluster import wait_established
from tests.e2e.conftest import wait_for
from tests.fixtures.cluster import KubeCluster
from tests.unit.packaging import bundle as b

pytestmark = pytest.mark.integration

LABEL = "paydeck.dev/policy-test"
CLIENT_ID = "0e3f1a2b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ROLE = "arn:aws:iam::123456789012:role/payments-eu"
RULES = {
    "images": {"allowedPrefixes": ["registry.example/payments/"]},
    "ingress": {"hostSuffixes": [".pay.example", "checkout.example.org"],
                "allowedAnnotations": ["cert-manager.io/", "nginx.ingress.kubernetes.io/"]},
    "identity": {"azureClientIds": [CLIENT_ID],
                 "awsRoleArns": [r"arn:aws:iam::123456789012:role/payments-[a-z]+"]},
}


def _apply(cluster: KubeCluster, docs: list[dict[str, Any]]) -> None:
    cluster.kubectl("apply", "--server-side", "--field-manager=helm", "-f", "-",
                    input="\n---\n".join(json.dumps(d) for d in docs))


def _delete(cluster: KubeCluster, docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        args = ["-n", doc["metadata"]["namespace"]] if "namespace" in doc["metadata"] else []
        cluster.kubectl("delete", doc["kind"], doc["metadata"]["name"], *args,
                        "--ignore-not-found", "--wait=false", check=False)


@pytest.fixture(scope="module")
def policy_crds(cluster: KubeCluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(b.CRDS))
    wait_established(cluster.kubectl, ["paymentservices.paydeck.dev",
                                       "paymentservicepolicies.paydeck.dev"])


# -- the platform policy ------------------------------------------------------------------------


def payment_service(namespace: str, name: str = "pay", **spec: Any) -> dict[str, Any]:
    body = {
        "image": "registry.example/payments/payment-runtime:1.4.2",
        "stripe": {"secretKey": {"secretRef": {"name": "stripe", "key": "key"}}},
        "database": {"url": {"secretRef": {"name": "db", "key": "url"}}},
        **spec,
    }
    return {"apiVersion": "paydeck.dev/v1alpha1", "kind": "PaymentService",
            "metadata": {"name": name, "namespace": namespace}, "spec": body}


def operator_check(platform: Platform, ps: dict[str, Any]) -> list[str]:
    """What :mod:`payment_operator.policy` says of ``ps``, with the live params object."""
    live = json.loads(platform.cluster.kubectl(
        "get", "paymentservicepolicy", platform.params["metadata"]["name"], "-o", "json").stdout)
    body = {**ps, "metadata": {**ps["metadata"], "uid": "0"}}
    return policy.violations(parse(body), policy.PlatformRules.from_spec(live["spec"]))


def kubectl_apply(cluster: KubeCluster, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """``kubectl apply`` as a GitOps tool or a person would run it."""
    return cluster.kubectl("apply", "-f", "-", input=json.dumps(obj), check=False)


class Platform:
    """The platform policy of one release, bound to one labelled namespace."""

    def __init__(self, cluster: KubeCluster, namespace: str, token: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.docs = [d for d in b.rendered(
            {"fullnameOverride": f"platform-{token}",
             "platformPolicy": {"namespaceSelector": {"matchLabels": {LABEL: token}},
                                "rules": RULES}},
            release="policy", namespace=namespace,
        ) if d["kind"] in ("PaymentServicePolicy", "ValidatingAdmissionPolicy",
                           "ValidatingAdmissionPolicyBinding")]
        self.params = b.one(self.docs, "PaymentServicePolicy")

    def set_rules(self, rules: dict[str, Any]) -> None:
        self.cluster.kubectl("patch", "paymentservicepolicy", self.params["metadata"]["name"],
                             "--type=merge", "-p", json.dumps({"spec": rules}))

    def rejects(self, image: str) -> bool:
        probe = payment_service(self.namespace, "probe", image=image)
        result = self.cluster.kubectl("create", "--dry-run=server", "-f", "-",
                                      input=json.dumps(probe), check=False)
        return "images.allowedPrefixes" in result.stderr


@pytest.fixture(scope="module")
def platform(cluster: KubeCluster, policy_crds: None) -> Iterator[Platform]:
    token = "t" + secrets.token_hex(3)  # never all digits (YAML would read a number)
    namespace = f"platform-policy-{token}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("label", "namespace", namespace, f"{LABEL}={token}")
    policy = Platform(cluster, namespace, token)
    _apply(cluster, policy.docs)
    wait_for(lambda: policy.rejects("elsewhere.example/payment-runtime:1"), 30,
             "the platform policy enforced")
    yield policy
    _delete(cluster, policy.docs)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


AZURE = {"backend": "external-secrets", "provider": "azure-keyvault",
         "azure": {"vaultName": "kv-pay", "tenantId": TENANT, "clientId": CLIENT_ID},
         "objects": [{"name": "DATABASE_URL", "remoteRef": "db"}]}
AWS = {"backend": "csi", "provider": "aws-secrets-manager",
       "aws": {"region": "eu-west-1", "roleArn": ROLE},
       "objects": [{"name": "DATABASE_URL", "remoteRef": "db"}]}
DB_FROM_STORE = {"url": {"storeObject": "DATABASE_URL"}}


@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        ({"image": "elsewhere.example/payment-runtime:1"}, "images.allowedPrefixes"),
        ({"image": "registry.example/payments-evil/payment-runtime:1"}, "images.allowedPrefixes"),
        ({"image": "registry.example/payment-runtime:1"}, "images.allowedPrefixes"),
        ({"stripe": {"apiBase": "https://collector.example",
                     "secretKey": {"secretRef": {"name": "stripe", "key": "key"}}}},
         "stripe.allowApiBase: spec.stripe.apiBase may not be set"),
        ({"ingress": {"host": "payments.example.com"}}, "ingress.hostSuffixes"),
        ({"ingress": {"host": "evilpay.example"}}, "ingress.hostSuffixes"),
        ({"ingress": {"host": "pay.checkout.example.org"}}, "ingress.hostSuffixes"),
        ({"ingress": {"host": "eu.pay.example",
                      "annotations": {"external-dns.alpha.kubernetes.io/hostname": "x"}}},
         "ingress.allowedAnnotations/forbiddenAnnotations: spec.ingress.annotations"
         " external-dns.alpha.kubernetes.io/hostname not allowed"),
        ({"ingress": {"host": "eu.pay.example", "annotations": {
            "nginx.ingress.kubernetes.io/configuration-snippet": "return 200;"}}},
         "nginx.ingress.kubernetes.io/configuration-snippet not allowed"),
        ({"service": {"type": "LoadBalancer"}}, "service.allowedTypes"),
        ({"service": {"type": "NodePort"}}, "service.allowedTypes"),
        ({"service": {"annotations": {"external-dns.alpha.kubernetes.io/hostname": "x"}}},
         "service.allowedAnnotations"),
        ({"secretStore": {**AZURE, "azure": {**AZURE["azure"],
                                             "clientId": "11111111-2222-4333-8444-555555555555"}},
          "database": DB_FROM_STORE}, "identity.azureClientIds"),
        ({"secretStore": {**AWS, "aws": {**AWS["aws"],
                                         "roleArn": "arn:aws:iam::123456789012:role/admin"}},
          "database": DB_FROM_STORE}, "identity.awsRoleArns"),
        ({"secretStore": {**AWS, "aws": {**AWS["aws"], "roleArn": f"{ROLE}-x/y"}},
          "database": DB_FROM_STORE}, "identity.awsRoleArns"),
        ({"podDisruptionBudget": {"maxUnavailable": 0}},
         "podDisruptionBudget.minMaxUnavailable"),
        ({"replicas": 3, "podDisruptionBudget": {"minAvailable": 3}},
         "podDisruptionBudget: spec.podDisruptionBudget.minAvailable must be below the replicas"
         " (3)"),
        ({"podDisruptionBudget": {"minAvailable": 2}}, "below the replicas (2)"),
        ({"replicas": 5, "autoscaling": {"minReplicas": 2, "maxReplicas": 6},
          "podDisruptionBudget": {"minAvailable": 2}}, "below the replicas (2)"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_payment_service_breaking_a_rule_is_rejected_naming_it(
        cluster: KubeCluster, platform: Platform, spec: dict[str, Any], rule: str) -> None:
    ps = payment_service(platform.namespace, "breaks", **spec)
    result = kubectl_apply(cluster, ps)
    assert result.returncode != 0, result.stdout
    assert "ValidatingAdmissionPolicy" in result.stderr and "platform policy " in result.stderr
    assert rule in result.stderr, result.stderr
    # The operator's check refuses it with the API server's message.
    [message] = operator_check(platform, ps)
    assert message in result.stderr, (message, result.stderr)


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"image": "registry.example/payments/payment-runtime@sha256:" + "ab" * 32,
         "replicas": 3,
         "ingress": {"host": "eu.pay.example",
                     "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt",
                                     "nginx.ingress.kubernetes.io/proxy-body-size": "1m"}},
         "secretStore": AZURE, "database": DB_FROM_STORE,
         "podDisruptionBudget": {"minAvailable": 2}},
        {"ingress": {"host": "checkout.example.org"}, "secretStore": AWS,
         "database": DB_FROM_STORE, "podDisruptionBudget": {"maxUnavailable": 1}},
        {"replicas": 1, "podDisruptionBudget": {"minAvailable": 0}},
    ],
    ids=["minimal", "azure-ingress-pdb", "aws-exact-host", "min-available-0"],
)
def test_a_compliant_payment_service_is_admitted(cluster: KubeCluster, platform: Platform,
                                                 spec: dict[str, Any]) -> None:
    ps = payment_service(platform.namespace, f"ok-{secrets.token_hex(2)}", **spec)
    result = kubectl_apply(cluster, ps)
    assert result.returncode == 0, result.stderr
    assert "created" in result.stdout
    assert operator_check(platform, ps) == []


def test_stripe_api_base_when_the_platform_allows_it_is_https_only(
        cluster: KubeCluster, platform: Platform) -> None:
    def stripe(api_base: str) -> dict[str, Any]:
        return {"apiBase": api_base, "secretKey": {"secretRef": {"name": "s", "key": "k"}}}

    platform.set_rules({"stripe": {"allowApiBase": True}})
    try:
        wait_for(lambda: kubectl_apply(cluster, payment_service(
            platform.namespace, "mock", stripe=stripe("https://stripe-mock.test:12111"))
        ).returncode == 0, 30, "stripe.apiBase allowed")
        plain = kubectl_apply(cluster, payment_service(
            platform.namespace, "plain", stripe=stripe("http://stripe-mock.test:12111")))
        assert plain.returncode != 0
        assert "stripe.allowApiBase: spec.stripe.apiBase must be an https:// URL" in plain.stderr
    finally:
        platform.set_rules({"stripe": {"allowApiBase": False}})
        wait_for(lambda: "may not be set" in kubectl_apply(cluster, payment_service(
            platform.namespace, "again", stripe=stripe("https://x.example"))).stderr,
            30, "stripe.apiBase forbidden again")


def test_a_tightened_policy_checks_spec_changes_only(cluster: KubeCluster,
                                                     platform: Platform) -> None:
    ps = payment_service(platform.namespace, "before")
    assert kubectl_apply(cluster, ps).returncode == 0
    platform.set_rules({"images": {"allowedPrefixes": ["registry.example/other/"]}})
    try:
        wait_for(lambda: platform.rejects(ps["spec"]["image"]), 30, "the tightened policy")
        # The operator's finalizer, a label, a status write: none is a spec change.
        patch = {"metadata": {"finalizers": ["paydeck.dev/finalizer"],
                              "labels": {"team": "checkout"}}}
        cluster.kubectl("patch", "paysvc", "before", "-n", platform.namespace,
                        "--type=merge", "-p", json.dumps(patch))
        cluster.kubectl("patch", "paysvc", "before", "-n", platform.namespace,
                        "--subresource=status", "--type=merge",
                        "-p", json.dumps({"status": {"phase": "Healthy"}}))
        changed = cluster.kubectl("patch", "paysvc", "before", "-n", platform.namespace,
                                  "--type=merge", "-p", '{"spec":{"replicas":3}}', check=False)
        assert changed.returncode != 0 and "images.allowedPrefixes" in changed.stderr
        # Deleting it (which ends with the finalizer's removal) is never blocked.
        cluster.kubectl("delete", "paysvc", "before", "-n", platform.namespace, "--wait=false")
        cluster.kubectl("patch", "paysvc", "before", "-n", platform.namespace,
                        "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
        wait_for(lambda: cluster.kubectl("get", "paysvc", "before", "-n", platform.namespace,
                                         check=False).returncode != 0, 30, "deleted")
    finally:
        platform.set_rules({"images": RULES["images"]})
        wait_for(lambda: not platform.rejects(ps["spec"]["image"]), 30, "the policy restored")


def test_without_its_params_object_the_platform_policy_rejects_everything(
        cluster: KubeCluster, policy_crds: None) -> None:
    token = "t" + secrets.token_hex(3)  # never all digits (YAML would read a number)
    namespace = f"platform-noparams-{token}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("label", "namespace", namespace, f"{LABEL}={token}")
    policy = Platform(cluster, namespace, token)
    without_params = [d for d in policy.docs if d["kind"] != "PaymentServicePolicy"]
    try:
        _apply(cluster, without_params)

        def denied() -> str:
            name = f"pay-{secrets.token_hex(2)}"
            result = kubectl_apply(cluster, payment_service(namespace, name))
            return result.stderr if result.returncode != 0 else ""
        message = wait_for(denied, 30, "the policy without params to deny")
        assert "ValidatingAdmissionPolicy" in str(message)
        assert "not found" in str(message).lower() or "params" in str(message).lower()
    finally:
        _delete(cluster, without_params)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


# -- the operator confinement -------------------------------------------------------------------


class Operator:
    """The chart's ServiceAccount, RBAC and confinement policy; requests made as the SA."""

    def __init__(self, cluster: KubeCluster, token: str) -> None:
        self.cluster = cluster
        self.namespace = f"confine-op-{token}"
        self.app = f"confine-app-{token}"
        self.docs = [d for d in b.rendered(
            {"fullnameOverride": f"confine-{token}", "platformPolicy": {"enabled": False,
                                                                        "rules": RULES}},
            release="confine", namespace=self.namespace,
        ) if d["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                           "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")]
        sa = b.one(self.docs, "ServiceAccount")["metadata"]["name"]
        self.user = f"system:serviceaccount:{self.namespace}:{sa}"
        self.as_operator = [f"--as={self.user}", "--as-group=system:serviceaccounts",
                            f"--as-group=system:serviceaccounts:{self.namespace}"]

    def create(self, obj: dict[str, Any], *, dry_run: bool = True
               ) -> subprocess.CompletedProcess[str]:
        args = ["create", "-f", "-", *self.as_operator]
        return self.cluster.kubectl(*args, *(["--dry-run=server"] if dry_run else []),
                                    input=json.dumps(obj), check=False)

    def apply(self, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """Server-side apply with force, as the operator updates its children."""
        return self.cluster.kubectl("apply", "--server-side", "--force-conflicts",
                                    "--field-manager=paydeck-operator", "-f", "-",
                                    *self.as_operator, input=json.dumps(obj), check=False)

    def api(self) -> client.ApiClient:
        """The Python client, impersonating the ServiceAccount."""
        api = config.new_client_from_config(config_file=str(self.cluster.kubeconfig))
        api.set_default_header("Impersonate-User", self.user)
        return api


@pytest.fixture(scope="module")
def confined(cluster: KubeCluster, policy_crds: None) -> Iterator[Operator]:
    op = Operator(cluster, secrets.token_hex(3))
    for namespace in (op.namespace, op.app):
        cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", op.app,
                    "--timeout=30s")
    _apply(cluster, op.docs)

    def enforced() -> bool:
        probe = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "probe", "namespace": op.app}}
        return "paydeck operator policy (managed-by)" in op.create(probe).stderr
    wait_for(enforced, 30, "the confinement policy enforced")
    yield op
    _delete(cluster, op.docs)
    for namespace in (op.app, op.namespace):
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def children(cluster: KubeCluster, confined: Operator) -> dict[str, dict[str, Any]]:
    """What the builders make for a live PaymentService (its uid), by kind, core kinds only."""
    cluster.kubectl("apply", "-f", "-",
                    input=json.dumps(payment_service(confined.app, replicas=2, autoscaling={
                        "minReplicas": 2, "maxReplicas": 3},
                        ingress={"host": "eu.pay.example"})))
    live = json.loads(cluster.kubectl("get", "paysvc", "pay", "-n", confined.app,
                                      "-o", "json").stdout)
    ps = parse(live)
    # The supporting children, the migration Job and the revision's Deployment, as reconcile
    # builds them.
    built = supporting(ps, Context()) + workloads(
        ps, Workloads(replicas={revision(ps): 2}, migration=True))
    return {m["kind"]: m for m in built}


def test_every_child_the_builders_make_is_admitted(confined: Operator,
                                                   children: dict[str, dict[str, Any]]) -> None:
    assert set(children) >= {"ServiceAccount", "ConfigMap", "Service", "Deployment", "Job",
                             "PodDisruptionBudget", "NetworkPolicy", "Ingress",
                             "HorizontalPodAutoscaler"}
    for kind, child in children.items():
        result = confined.create(child)
        assert result.returncode == 0, f"{kind}: {result.stderr}"


def _deployment(children: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return copy.deepcopy(children["Deployment"])


def _unlabelled(children):
    d = _deployment(children)
    del d["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    return d


def _unowned(children):
    d = _deployment(children)
    del d["metadata"]["ownerReferences"]
    return d


def _owned_by_something_else(children):
    d = _deployment(children)
    d["metadata"]["ownerReferences"][0].update(apiVersion="apps/v1", kind="ReplicaSet")
    return d


def _not_controller(children):
    d = _deployment(children)
    d["metadata"]["ownerReferences"][0]["controller"] = False
    return d


def _other_service_account(children):
    d = _deployment(children)
    d["spec"]["template"]["spec"]["serviceAccountName"] = "default"
    return d


def _deprecated_service_account(children):
    d = _deployment(children)
    del d["spec"]["template"]["spec"]["serviceAccountName"]
    d["spec"]["template"]["spec"]["serviceAccount"] = "default"
    return d


def _job_as_default(children):
    job = copy.deepcopy(children["Job"])
    job["spec"]["template"]["spec"]["serviceAccountName"] = "default"
    return job


def _token_mounted(children):
    d = _deployment(children)
    d["spec"]["template"]["spec"]["automountServiceAccountToken"] = True
    return d


def _token_projected(children):
    job = copy.deepcopy(children["Job"])
    job["spec"]["template"]["spec"]["volumes"].append({"name": "token", "projected": {
        "sources": [{"serviceAccountToken": {"path": "token"}}]}})
    return job


def _in_kube_system(children):
    cm = copy.deepcopy(children["ConfigMap"])
    cm["metadata"]["namespace"] = "kube-system"
    return cm


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (_unlabelled, "(managed-by)"),
        (_unowned, "(owner)"),
        (_owned_by_something_else, "(owner)"),
        (_not_controller, "(owner)"),
        (_other_service_account, "(serviceAccountName)"),
        (_deprecated_service_account, "(serviceAccountName)"),
        (_job_as_default, "(serviceAccountName)"),
        (_token_mounted, "(apiToken)"),
        (_token_projected, "(apiToken)"),
        (_in_kube_system, "(protectedNamespaces)"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_a_write_the_operator_must_never_make_is_rejected(
        confined: Operator, children: dict[str, dict[str, Any]], make, rule: str) -> None:
    result = confined.create(make(children))
    assert result.returncode != 0
    assert f"paydeck operator policy {rule}" in result.stderr, result.stderr


def test_the_policy_confines_only_the_operator(cluster: KubeCluster, confined: Operator,
                                               children: dict[str, dict[str, Any]]) -> None:
    admin = cluster.kubectl("create", "--dry-run=server", "-f", "-",
                            input=json.dumps(_other_service_account(children)), check=False)
    assert admin.returncode == 0, admin.stderr


def test_the_operator_cannot_take_over_or_delete_a_foreign_object(
        cluster: KubeCluster, confined: Operator, children: dict[str, dict[str, Any]]) -> None:
    foreign = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "pay-config", "namespace": confined.app},
               "data": {"owner": "someone else"}}
    deny_all = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "pay", "namespace": confined.app},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(foreign))
    cluster.kubectl("apply", "-f", "-", input=json.dumps(deny_all))
    try:
        takeover = confined.apply(children["ConfigMap"])
        assert takeover.returncode != 0
        assert "paydeck operator policy (takeover)" in takeover.stderr, takeover.stderr
        assert json.loads(cluster.kubectl("get", "configmap", "pay-config", "-n",
                                          confined.app, "-o", "json").stdout)["data"] == {
            "owner": "someone else"}
        deleted = cluster.kubectl("delete", "networkpolicy", "pay", "-n", confined.app,
                                  *confined.as_operator, check=False)
        assert deleted.returncode != 0
        assert "paydeck operator policy (managed-by)" in deleted.stderr, deleted.stderr
        assert cluster.kubectl("get", "networkpolicy", "pay", "-n", confined.app).returncode == 0
    finally:
        for kind, name in (("configmap", "pay-config"), ("networkpolicy", "pay")):
            cluster.kubectl("delete", kind, name, "-n", confined.app, "--ignore-not-found")


def test_the_operator_updates_and_deletes_its_own_child_but_never_reparents_it(
        cluster: KubeCluster, confined: Operator, children: dict[str, dict[str, Any]]) -> None:
    child = copy.deepcopy(children["NetworkPolicy"])
    created = confined.create(child, dry_run=False)
    assert created.returncode == 0, created.stderr
    child["metadata"]["annotations"] = {"paydeck.dev/updated": "yes"}
    updated = confined.apply(child)
    assert updated.returncode == 0, updated.stderr
    # Someone strips the label: the operator may put it back (the owner is what counts).
    cluster.kubectl("label", "networkpolicy", "pay", "-n", confined.app,
                    "app.kubernetes.io/managed-by-")
    restored = confined.apply(child)
    assert restored.returncode == 0, restored.stderr
    [owner] = copy.deepcopy(child["metadata"]["ownerReferences"])
    owner["uid"] = "00000000-0000-4000-8000-000000000000"  # another PaymentService's
    reparented = cluster.kubectl(
        "patch", "networkpolicy", "pay", "-n", confined.app, "--type=merge",
        "-p", json.dumps({"metadata": {"ownerReferences": [owner]}}), *confined.as_operator,
        check=False)
    assert reparented.returncode != 0
    assert "paydeck operator policy (takeover)" in reparented.stderr, reparented.stderr
    deleted = cluster.kubectl("delete", "networkpolicy", "pay", "-n", confined.app,
                              *confined.as_operator, check=False)
    assert deleted.returncode == 0, deleted.stderr


def test_status_events_and_the_finalizer_are_not_blocked(
        cluster: KubeCluster, confined: Operator, children: dict[str, dict[str, Any]]) -> None:
    api = confined.api()
    custom = client.CustomObjectsApi(api)
    custom.patch_namespaced_custom_object_status(
        "paydeck.dev", "v1alpha1", confined.app, "paymentservices", "pay",
        {"status": {"phase": "Progressing", "message": "written by the operator's account"}})
    custom.patch_namespaced_custom_object(
        "paydeck.dev", "v1alpha1", confined.app, "paymentservices", "pay",
        {"metadata": {"finalizers": ["paydeck.dev/finalizer"]}})
    client.CoreV1Api(api).create_namespaced_event(confined.app, {
        "metadata": {"generateName": "pay."},
        "involvedObject": {"apiVersion": "paydeck.dev/v1alpha1", "kind": "PaymentService",
                           "name": "pay", "namespace": confined.app},
        "reason": "Created", "message": "created ConfigMap/pay-config", "type": "Normal"})
    live = json.loads(cluster.kubectl("get", "paysvc", "pay", "-n", confined.app,
                                      "-o", "json").stdout)
    assert live["status"]["phase"] == "Progressing"
    assert live["metadata"]["finalizers"] == ["paydeck.dev/finalizer"]
    cluster.kubectl("patch", "paysvc", "pay", "-n", confined.app, "--type=json",
                    "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')


# -- KafkaTopics in Strimzi's namespace, owned by label ------------------------------------------


@pytest.fixture(scope="module")
def remote_topic(cluster: KubeCluster, confined: Operator,
                 children: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """A KafkaTopic the builders make for the live PaymentService with strimzi.namespace
    another namespace (Strimzi's real CRD installed): no owner reference, owner-uid label."""
    from payment_operator.builders import Capabilities

    from hack import crds

    cluster.kubectl("apply", "--server-side", "--field-manager=tests",
                    *(a for f in crds.paths(["strimzi"]) for a in ("-f", str(f))))
    wait_established(cluster.kubectl, ["kafkatopics.kafka.strimzi.io"])
    strimzi_ns = f"{confined.app}-kafka"
    cluster.kubectl("create", "namespace", strimzi_ns)
    live = json.loads(cluster.kubectl("get", "paysvc", "pay", "-n", confined.app,
                                      "-o", "json").stdout)
    live["spec"]["kafka"] = {
        "bootstrapServers": "kafka:9092", "topicProvisioner": "strimzi",
        "strimzi": {"clusterName": "main", "namespace": strimzi_ns},
        "topics": [{"name": "payment.events"}]}
    built = supporting(parse(live), Context(capabilities=Capabilities(strimzi=True)))
    [topic] = [m for m in built if m["kind"] == "KafkaTopic"]
    assert topic["metadata"]["namespace"] == strimzi_ns
    assert "ownerReferences" not in topic["metadata"]
    yield topic
    cluster.kubectl("delete", "namespace", strimzi_ns, "--wait=false", check=False)


def test_a_label_owned_kafka_topic_is_admitted_and_kept_by_its_owner(
        cluster: KubeCluster, confined: Operator, remote_topic: dict[str, Any]) -> None:
    topic = copy.deepcopy(remote_topic)
    created = confined.create(topic, dry_run=False)
    assert created.returncode == 0, created.stderr
    topic["spec"]["partitions"] = 6
    updated = confined.apply(topic)
    assert updated.returncode == 0, updated.stderr
    # Handing it to another PaymentService (its uid in the label) is a takeover.
    moved = copy.deepcopy(topic)
    moved["metadata"]["labels"]["paydeck.dev/owner-uid"] = "00000000-0000-4000-8000-000000000000"
    refused = confined.apply(moved)
    assert refused.returncode != 0
    assert "paydeck operator policy (takeover)" in refused.stderr, refused.stderr
    meta = topic["metadata"]
    deleted = cluster.kubectl("delete", "kafkatopics.kafka.strimzi.io", meta["name"],
                              "-n", meta["namespace"], *confined.as_operator, check=False)
    assert deleted.returncode == 0, deleted.stderr


def test_a_kafka_topic_owned_neither_by_reference_nor_by_label_is_rejected(
        confined: Operator, remote_topic: dict[str, Any]) -> None:
    topic = copy.deepcopy(remote_topic)
    del topic["metadata"]["labels"]["paydeck.dev/owner-uid"]
    result = confined.create(topic)
    assert result.returncode != 0
    assert "paydeck operator policy (owner)" in result.stderr, result.stderr
    assert "owner-uid" in result.stderr


def test_a_taken_over_foreign_kafka_topic_is_rejected(
        cluster: KubeCluster, confined: Operator, remote_topic: dict[str, Any]) -> None:
    """The platform team's KafkaTopic of that name (no owner-uid label) stays theirs."""
    meta = remote_topic["metadata"]
    foreign = {"apiVersion": remote_topic["apiVersion"], "kind": "KafkaTopic",
               "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                            "labels": {"strimzi.io/cluster": "main"}},
               "spec": {"partitions": 1, "replicas": 1}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(foreign))
    try:
        takeover = confined.apply(remote_topic)
        assert takeover.returncode != 0
        assert "paydeck operator policy (takeover)" in takeover.stderr, takeover.stderr
    finally:
        cluster.kubectl("delete", "kafkatopics.kafka.strimzi.io", meta["name"],
                        "-n", meta["namespace"], "--ignore-not-found")
