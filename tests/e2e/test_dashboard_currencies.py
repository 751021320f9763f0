"""The Grafana dashboard ConfigMap and the reporting-currency rate table, with the real
operator on the real API server: the dashboard appears, is owned and is pruned as
spec.monitoring.dashboard toggles; a missing rate-table ConfigMap is named in the status and
holds the pods back until the user creates it, which the operator never writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.e2e import secrets
from tests.e2e.conftest import condition, get_json, wait_for

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "samples"


def _minimal() -> dict:
    return yaml.safe_load((SAMPLES / "minimal.yaml").read_text())


def _apply(cluster, namespace: str, obj: dict) -> None:
    secrets.create_for(cluster, namespace, obj)
    cluster.kubectl("apply", "--server-side", "--field-manager=gitops", "-n", namespace,
                    "-f", "-", input=json.dumps(obj))


def test_dashboard_configmap_is_created_owned_and_pruned(cluster, namespace, operator):
    ps = _minimal()
    name = ps["metadata"]["name"]
    ps["spec"]["monitoring"] = {"dashboard": True}
    _apply(cluster, namespace, ps)
    cm = wait_for(lambda: get_json(cluster, "configmap", f"{name}-dashboard", "-n", namespace),
                  60, "the dashboard ConfigMap", operator)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    owner = get_json(cluster, "paysvc", name, "-n", namespace)
    assert [(o["kind"], o["name"], o["uid"], o.get("controller")) for o in
            cm["metadata"]["ownerReferences"]] == [
        ("PaymentService", name, owner["metadata"]["uid"], True)]
    board = json.loads(cm["data"][f"{name}.json"])
    assert all(f'namespace="{namespace}"' in t["expr"]
               for p in board["panels"] for t in p["targets"])

    ps["spec"]["monitoring"] = {"dashboard": False}
    _apply(cluster, namespace, ps)
    wait_for(lambda: get_json(cluster, "configmap", f"{name}-dashboard", "-n", namespace) is None,
             30, "the dashboard ConfigMap pruned", operator)
    assert get_json(cluster, "configmap", f"{name}-config", "-n", namespace)  # never pruned


def test_missing_rates_configmap_is_named_and_holds_the_pods(cluster, namespace, operator):
    ps = _minimal()
    name = ps["metadata"]["name"]
    ps["spec"]["currencies"] = {"reporting": "EUR",
                                "ratesConfigMap": {"name": "fx-rates", "key": "rates.json"}}
    _apply(cluster, namespace, ps)

    def gate() -> dict:
        return condition(get_json(cluster, "paysvc", name, "-n", namespace),
                         "CurrencyRatesReady")

    closed = wait_for(lambda: gate().get("reason") == "ConfigMapMissing" and gate(), 60,
                      "CurrencyRatesReady=False ConfigMapMissing", operator)
    assert closed["status"] == "False" and "fx-rates" in closed["message"]
    obj = get_json(cluster, "paysvc", name, "-n", namespace)
    assert obj["status"]["phase"] == "Progressing"
    assert "CurrencyRatesReady" in obj["status"]["message"]
    assert not get_json(cluster, "deployments", "-n", namespace)["items"]  # no pod that hangs
    config = get_json(cluster, "configmap", f"{name}-config", "-n", namespace)
    assert config["data"]["PAYMENT_REPORTING_CURRENCY"] == "EUR"

    # The user creates the rate table: the gate opens (looked at again every 10 s).
    rates = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fx-rates"},
             "data": {"rates.json": json.dumps({"USD": "0.92", "JPY": "0.0061"})}}
    cluster.kubectl("apply", "--server-side", "--field-manager=user", "-n", namespace,
                    "-f", "-", input=json.dumps(rates))
    wait_for(lambda: gate().get("status") == "True", 40, "CurrencyRatesReady=True", operator)
    wait_for(lambda: get_json(cluster, "paysvc", name, "-n", namespace)["status"]
             .get("phase") == "Healthy", 90, "Healthy", operator)
    assert not secrets.missing(cluster, namespace)  # every Secret and ConfigMap the pods mount
    (deployment,) = get_json(cluster, "deployments", "-n", namespace)["items"]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "fx-rates", "configMap": {
        "name": "fx-rates", "items": [{"key": "rates.json", "path": "rates.json"}],
        "defaultMode": 0o444}} in volumes
    user = get_json(cluster, "configmap", "fx-rates", "-n", namespace, "--show-managed-fields")
    assert {m["manager"] for m in user["metadata"]["managedFields"]} == {"user"}
    assert "ownerReferences" not in user["metadata"]
