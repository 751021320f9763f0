"""manifests/install/ and the chart's static files: the contract each object must keep.

RBAC without Secrets, wildcards or escalation, and covering every kind the operator manages
(whether it is enough, and not more, is proved by running the operator with it:
tests/e2e/test_rbac.py); admission policies that confine the operator's ServiceAccount and
check PaymentServices against a shipped PaymentServicePolicy; the restricted Pod Security
Standard, two replicas joined by Kopf peering, the probe and metrics ports, the values schema,
and a header comment on every shipped YAML/Lua/JSON file.  Rendering the chart and asking the
API server are integration tests (tests/integration/packaging).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from payment_operator.api import parse
from payment_operator.builders import Context, supporting
from payment_operator.kube import resources

from tests.unit.builders.cases import minimal_body
from tests.unit.packaging import bundle as b

pytestmark = pytest.mark.unit


def test_bundle_objects_in_apply_order() -> None:
    kinds = [(d["kind"], d["metadata"]["name"]) for d in b.bundle()]
    assert kinds == [
        ("Namespace", "paydeck-system"),
        ("ServiceAccount", "paydeck-operator"),
        ("ClusterRole", "paydeck-operator"),
        ("ClusterRoleBinding", "paydeck-operator"),
        ("ClusterKopfPeering", "paydeck"),
        ("Deployment", "paydeck-operator"),
        ("Service", "paydeck-operator-metrics"),
        ("ValidatingAdmissionPolicy", "paydeck-operator-confinement"),
        ("ValidatingAdmissionPolicyBinding", "paydeck-operator-confinement"),
        ("PaymentServicePolicy", "paydeck-operator"),
        ("ValidatingAdmissionPolicy", "paydeck-operator-platform"),
        ("ValidatingAdmissionPolicyBinding", "paydeck-operator-platform"),
        ("NetworkPolicy", "paydeck-operator"),
    ]
    for doc in b.bundle():
        if doc["kind"] in {"ServiceAccount", "Deployment", "Service", "NetworkPolicy"}:
            assert doc["metadata"]["namespace"] == b.NAMESPACE


def test_namespace_enforces_restricted_pod_security() -> None:
    labels = b.one(b.bundle(), "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


SA_USER = f"system:serviceaccount:{b.NAMESPACE}:{b.SERVICE_ACCOUNT}"
#: Verbs that would let the operator change objects wholesale or grant itself more.
NEVER = {"update", "deletecollection", "escalate", "bind", "impersonate", "*"}


def test_cluster_role_has_nothing_on_secrets_and_no_wildcards() -> None:
    for group, resource, verb, _ in b.permissions(b.one(b.bundle(), "ClusterRole")):
        assert resource.split("/")[0] not in {"secrets", "namespaces"}, resource
        if resource.startswith("pods"):  # read only: waiting reasons of containers
            assert (resource, verb) in {("pods", "get"), ("pods", "list")}, (resource, verb)
        assert group != "rbac.authorization.k8s.io"
        assert "*" not in (group, resource) and verb not in NEVER, (group, resource, verb)


def test_rbac_covers_every_kind_the_operator_manages() -> None:
    granted = b.permissions(b.one(b.bundle(), "ClusterRole"))
    # Built for every PaymentService, so never pruned: no delete.
    base = supporting(parse(minimal_body(networkPolicy={"enabled": False})), Context())
    always = {m["kind"] for m in base}
    assert always == {"ServiceAccount", "ConfigMap", "Service", "PodDisruptionBudget"}
    # ...unless an optional child is of such a kind too: the Grafana dashboard ConfigMap.
    dashboard = supporting(parse(minimal_body(networkPolicy={"enabled": False},
                                              monitoring={"dashboard": True})), Context())
    optional = {m["kind"] for m in dashboard if m not in base}
    assert optional == {"ConfigMap"}
    for resource in resources.KNOWN:
        if resource.kind == "PaymentService":
            continue
        verbs = {"get", "list", "watch", "create", "patch"}  # children are watched
        if resource.kind not in always or resource.kind in optional:
            verbs.add("delete")
        have = {v for g, r, v, names in granted
                if (g, r) == (resource.group, resource.plural) and not names}
        assert have == verbs, resource


def test_peering_is_patched_by_name_only() -> None:
    granted = b.permissions(b.one(b.bundle(), "ClusterRole"))
    assert {(v, names) for g, r, v, names in granted if r == "clusterkopfpeerings"} == {
        ("list", ()), ("watch", ()), ("patch", ("paydeck",))}


def test_the_platform_policy_is_read_by_name_only() -> None:
    granted = b.permissions(b.one(b.bundle(), "ClusterRole"))
    assert {(v, names) for g, r, v, names in granted if r == "paymentservicepolicies"} == {
        ("get", ("paydeck-operator",))}
    env = b.one(b.bundle(), "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "PAYDECK_PLATFORM_POLICY", "value": "paydeck-operator"} in env


# -- admission policies ---------------------------------------------------------------------


def _policy(kind: str, name: str) -> dict[str, Any]:
    return b.one(b.bundle(), kind, name)


def test_confinement_policy_matches_the_operator_on_every_child_kind() -> None:
    policy = _policy("ValidatingAdmissionPolicy", "paydeck-operator-confinement")["spec"]
    assert policy["failurePolicy"] == "Fail"
    [condition] = policy["matchConditions"]
    assert condition["expression"] == f'request.userInfo.username == "{SA_USER}"'
    matched = {(group, plural) for rule in policy["matchConstraints"]["resourceRules"]
               for group in rule["apiGroups"] for plural in rule["resources"]
               if set(rule["operations"]) == {"CREATE", "UPDATE", "DELETE"}}
    children = {(r.group, r.plural) for r in resources.KNOWN if r.child}
    assert matched == children
    for validation in policy["validations"]:
        assert "paydeck operator policy (" in validation["messageExpression"]
    binding = _policy("ValidatingAdmissionPolicyBinding", "paydeck-operator-confinement")
    assert binding["spec"] == {"policyName": "paydeck-operator-confinement",
                               "validationActions": ["Deny"]}


def test_confinement_policy_protects_kube_system() -> None:
    policy = _policy("ValidatingAdmissionPolicy", "paydeck-operator-confinement")["spec"]
    first = policy["validations"][0]["expression"]
    assert "request.namespace in" in first and "'kube-system'" in first


def test_platform_policy_checks_paymentservices_against_the_shipped_params() -> None:
    policy = _policy("ValidatingAdmissionPolicy", "paydeck-operator-platform")["spec"]
    assert policy["paramKind"] == {"apiVersion": "paydeck.dev/v1alpha1",
                                   "kind": "PaymentServicePolicy"}
    [rule] = policy["matchConstraints"]["resourceRules"]
    assert (rule["apiGroups"], rule["resources"]) == (["paydeck.dev"], ["paymentservices"])
    binding = _policy("ValidatingAdmissionPolicyBinding", "paydeck-operator-platform")["spec"]
    assert binding["paramRef"] == {"name": "paydeck-operator",
                                   "parameterNotFoundAction": "Deny"}
    assert binding["validationActions"] == ["Deny"]
    # Every message names its rule: a field of the PaymentServicePolicy.
    fields = _policy_fields()
    for validation in policy["validations"]:
        rule_name = validation["messageExpression"].split("platform policy ", 1)[1].split(":")[0]
        assert rule_name.split("/")[0] in fields, rule_name


def _policy_fields() -> set[str]:
    crd = yaml.safe_load((b.CRDS / "paymentservicepolicies.paydeck.dev.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return {section for section in spec["properties"]} | {
        f"{section}.{field}" for section, body in spec["properties"].items()
        for field in body["properties"]}


def test_shipped_platform_params_are_the_safe_defaults() -> None:
    params = _policy("PaymentServicePolicy", "paydeck-operator")["spec"]
    assert params["stripe"] == {"allowApiBase": False}
    assert params["service"]["allowedTypes"] == ["ClusterIP"]
    assert params["ingress"]["hostSuffixes"] == [] == params["ingress"]["allowedAnnotations"]
    assert params["identity"] == {"azureClientIds": [], "awsRoleArns": []}
    assert params["podDisruptionBudget"] == {"minMaxUnavailable": 1}
    assert all(p.endswith("/") for p in params["images"]["allowedPrefixes"])


def test_binding_ties_the_role_to_the_service_account() -> None:
    binding = b.one(b.bundle(), "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": "paydeck-operator"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": b.SERVICE_ACCOUNT,
                                    "namespace": b.NAMESPACE}]


def assert_restricted_operator_pod(deployment: dict[str, Any], *, image: str) -> None:
    """The operator Deployment's pod: restricted PSS, probes, ports, peering env, resources."""
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["image"] == image
    assert container["command"] == ["payment-operator"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert {m["mountPath"]: m["name"] for m in container["volumeMounts"]} == {"/tmp": "tmp"}
    assert {v["name"]: "emptyDir" in v for v in pod["volumes"]} == {"tmp": True}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"healthz": 8080, "metrics": 9090}
    probe = container["livenessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/healthz", "healthz")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PAYDECK_PEERING_NAME"] == "paydeck"
    assert env.get("PAYDECK_STANDALONE") in (None, "false")
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) >= {"cpu", "memory"}


def test_deployment_runs_two_peered_restricted_replicas() -> None:
    deployment = b.one(b.bundle(), "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]
    assert pod["spec"]["serviceAccountName"] == b.SERVICE_ACCOUNT
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert_restricted_operator_pod(deployment, image="ghcr.io/paydeck/payment-operator:0.1.0")


def test_metrics_service_selects_the_operator_pods() -> None:
    docs = b.bundle()
    service = b.one(docs, "Service")
    pod_labels = b.one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(9090, "metrics")]


def test_peering_object_matches_the_operator_setting() -> None:
    peering = b.one(b.bundle(), "ClusterKopfPeering")
    assert peering["apiVersion"] == "kopf.dev/v1"
    env = b.one(b.bundle(), "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "PAYDECK_PEERING_NAME", "value": peering["metadata"]["name"]} in env


# -- chart static files --------------------------------------------------------------------------


def values() -> dict[str, Any]:
    return yaml.safe_load((b.CHART / "values.yaml").read_text())


def schema() -> dict[str, Any]:
    return json.loads((b.CHART / "values.schema.json").read_text())


def test_chart_metadata() -> None:
    chart = yaml.safe_load((b.CHART / "Chart.yaml").read_text())
    assert (chart["apiVersion"], chart["name"]) == ("v2", "payment-operator")
    assert chart["appVersion"] == "0.1.0"


def test_default_values_satisfy_the_schema() -> None:
    jsonschema.validate(values(), schema())


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (("replicaCount",), "two"),
        (("image", "pullPolicy"), "Sometimes"),
        (("ports", "metrics"), 70000),
        (("watchNamespaces",), ["Not_A_Namespace"]),
        (("peering", "priority"), "high"),
        (("resources", "limits", "memory"), "lots"),
        (("unknownKey",), True),
        (("platformPolicy", "rules", "images", "allowedPrefixes"), ["registry.example"]),
        (("platformPolicy", "rules", "service", "allowedTypes"), ["ExternalName"]),
        (("platformPolicy", "rules", "ingress", "hostSuffixes"), ["*.example.com"]),
        (("platformPolicy", "rules", "stripe", "allowApiBase"), "yes"),
        (("operatorPolicy", "protectedNamespaces"), ["Kube_System"]),
    ],
)
def test_schema_rejects_bad_values(path: tuple[str, ...], bad: object) -> None:
    data = values()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema())


def test_default_values_match_the_bundle() -> None:
    v = values()
    container = b.one(b.bundle(), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert f"{v['image']['repository']}:0.1.0" == container["image"]
    assert v["replicaCount"] == 2
    assert v["peering"]["name"] == "paydeck"
    assert v["resources"] == container["resources"]


SHIPPED = [
    *sorted((b.ROOT / "manifests" / "install").glob("*.yaml")),
    *sorted((b.ROOT / "manifests" / "argocd").rglob("*.yaml")),
    *sorted((b.ROOT / "manifests" / "argocd").rglob("*.lua")),
    b.CHART / "Chart.yaml",
    b.CHART / "values.yaml",
    b.ROOT / "crds" / "kopf-peering.yaml",
    b.ROOT / "crds" / "paymentservicepolicies.paydeck.dev.yaml",
]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(b.ROOT)))
def test_shipped_file_opens_with_a_comment(path: Path) -> None:
    marker = "--" if path.suffix == ".lua" else "#"
    assert path.read_text().startswith(marker + " ")


def test_values_schema_says_what_it_is() -> None:
    assert "values" in schema()["$comment"]


def _policy_schema() -> dict[str, Any]:
    crd = yaml.safe_load((b.CRDS / "paymentservicepolicies.paydeck.dev.yaml").read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


@pytest.mark.parametrize("source", ["chart values", "bundle"])
def test_shipped_platform_rules_satisfy_the_policy_crd(source: str) -> None:
    rules = (values()["platformPolicy"]["rules"] if source == "chart values"
             else _policy("PaymentServicePolicy", "paydeck-operator")["spec"])
    jsonschema.validate(rules, _policy_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**rules, "service": {"allowedTypes": ["ExternalName"]}},
                            _policy_schema())
