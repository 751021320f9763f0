"""Children on optional APIs appear once the cluster serves them, and go when no longer wanted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import condition, get_json, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _owned_by(obj: dict, name: str) -> bool:
    return [(o["kind"], o["name"]) for o in obj["metadata"]["ownerReferences"]] == [
        ("PaymentService", name)]


def test_optional_children_are_created_and_pruned(cluster, namespace, operator, third_party_crds):
    ps = yaml.safe_load((ROOT / "manifests" / "samples" / "full.yaml").read_text())
    name = ps["metadata"]["name"]
    cluster.kubectl("apply", "--server-side", "--field-manager=gitops", "-n", namespace, "-f", "-",
                    input=json.dumps(ps))
    wait_for(lambda: condition(get_json(cluster, "paysvc", name, "-n", namespace),
                               "Ready").get("status") == "True", 120, "Ready", operator)
    for kind in ("servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com",
                 "externalsecrets.external-secrets.io", "secretstores.external-secrets.io"):
        obj = get_json(cluster, kind, name, "-n", namespace)
        assert obj is not None, kind
        assert _owned_by(obj, name), kind
    external = get_json(cluster, "externalsecrets.external-secrets.io", name, "-n", namespace)
    remote = sorted(d["remoteRef"]["key"] for d in external["spec"]["data"])
    assert remote == ["payment-database-url", "stripe-secret-key", "stripe-webhook-secret"]

    # Switch monitoring and the ingress off: their children are pruned, nothing else is.
    ps["spec"]["monitoring"]["serviceMonitor"] = False
    del ps["spec"]["ingress"]
    cluster.kubectl("apply", "--server-side", "--field-manager=gitops", "-n", namespace, "-f", "-",
                    input=json.dumps(ps))
    for kind in ("servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com",
                 "ingress"):
        wait_for(lambda kind=kind: get_json(cluster, kind, name, "-n", namespace) is None,
                 30, f"{kind} pruned", operator)
    assert get_json(cluster, "externalsecrets.external-secrets.io", name, "-n", namespace)
    assert get_json(cluster, "deployment", name, "-n", namespace)
    events = cluster.kubectl("get", "events", "-n", namespace,
                             f"--field-selector=involvedObject.name={name},reason=Pruned",
                             "-o", "jsonpath={.items[*].message}").stdout
    assert "ServiceMonitor" in events and "Ingress" in events


def test_csi_secret_binding(cluster, namespace, operator, third_party_crds):
    ps = yaml.safe_load((ROOT / "manifests" / "samples" / "aws.yaml").read_text())
    name = ps["metadata"]["name"]
    cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=json.dumps(ps))
    spc = wait_for(lambda: get_json(cluster, "secretproviderclasses.secrets-store.csi.x-k8s.io",
                                    name, "-n", namespace), 60, "SecretProviderClass", operator)
    assert _owned_by(spc, name)
    assert spc["spec"]["provider"] == "aws"
    pod_spec = get_json(cluster, "deployment", name, "-n", namespace)["spec"]["template"]["spec"]
    assert any(v.get("csi", {}).get("driver") == "secrets-store.csi.k8s.io"
               for v in pod_spec.get("volumes", []))
