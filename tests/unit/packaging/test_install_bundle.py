"""manifests/install/ and the chart's static files: the contract each object must keep.

Least privilege (exactly the expected RBAC, nothing on Secrets), the restricted Pod Security
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
from payment_operator.kube import resources

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
    ]
    for doc in b.bundle():
        if doc["kind"] in {"ServiceAccount", "Deployment", "Service"}:
            assert doc["metadata"]["namespace"] == b.NAMESPACE


def test_namespace_enforces_restricted_pod_security() -> None:
    labels = b.one(b.bundle(), "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_cluster_role_grants_exactly_the_contract() -> None:
    granted = b.permissions(b.one(b.bundle(), "ClusterRole"))
    assert granted - b.EXPECTED_RULES == set(), "more than needed"
    assert b.EXPECTED_RULES - granted == set(), "missing"


def test_cluster_role_has_nothing_on_secrets_and_no_wildcards() -> None:
    for group, resource, verb in b.permissions(b.one(b.bundle(), "ClusterRole")):
        assert resource.split("/")[0] != "secrets"
        assert "*" not in (group, resource, verb)


def test_the_rbac_contract_is_not_vacuous() -> None:
    # A self-check of the helper: a role that adds Secrets must differ from the contract.
    role = b.one(b.bundle(), "ClusterRole")
    extended = {"rules": [*role["rules"], {"apiGroups": [""], "resources": ["secrets"],
                                           "verbs": ["get"]}]}
    assert b.permissions(extended) - b.EXPECTED_RULES == {("", "secrets", "get")}


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
]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(b.ROOT)))
def test_shipped_file_opens_with_a_comment(path: Path) -> None:
    marker = "--" if path.suffix == ".lua" else "#"
    assert path.read_text().startswith(marker + " ")


def test_values_schema_says_what_it_is() -> None:
    assert "values" in schema()["$comment"]


def test_rbac_contract_covers_every_kind_the_operator_manages() -> None:
    for resource in resources.KNOWN:
        if resource.kind in ("PaymentService", "Event"):
            continue
        assert resource.plural in b.CHILDREN.get(resource.group, ()), resource
