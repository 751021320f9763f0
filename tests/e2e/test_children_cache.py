"""Reconcile passes read the children from the watch-fed cache, not from the API server.

Counted by the API server itself (``apiserver_request_total``): while the drift timer passes
over a Ready PaymentService again and again, the operator makes no GET and no LIST of any
child kind, only one GET of the PaymentService per pass.  And the watches that feed the cache
carry only managed children (a server-side label selector), so a child whose managed-by label
is removed drops out of them: the pass that follows must still find it and label it again.
Kopf indexes every listed child before any handler runs: an operator that starts beside more
children of one kind than it has workers must not wait for itself.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from hack.apiserver_metrics import operator_reads
from tests.e2e import secrets
from tests.e2e.conftest import OperatorProcess, condition, get_json, wait_for

pytestmark = pytest.mark.e2e

RESYNC_SECONDS = 2
SAMPLE = Path(__file__).resolve().parents[2] / "manifests" / "samples" / "minimal.yaml"
MANAGED_BY = "app.kubernetes.io/managed-by"


def _apply_sample(cluster, namespace: str) -> str:
    ps = yaml.safe_load(SAMPLE.read_text())
    secrets.create_for(cluster, namespace, ps)
    cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=json.dumps(ps))
    return str(ps["metadata"]["name"])


def _ready(cluster, namespace: str, name: str) -> bool:
    return condition(get_json(cluster, "paysvc", name, "-n", namespace),
                     "Ready").get("status") == "True"


def test_passes_read_no_child_from_the_api_server(cluster, namespace, operator):
    # The counter is cluster-wide: let earlier tests' namespaces go first (the namespace
    # controller lists every kind while it empties one).
    wait_for(lambda: "Terminating" not in cluster.kubectl("get", "namespaces").stdout, 180,
             "earlier tests' namespaces to finish terminating", operator)
    operator.stop()  # replaced by one with a fast drift timer, watching only this namespace
    fast = OperatorProcess(cluster.kubeconfig, ("--standalone", "-n", namespace),
                           {"PAYDECK_RESYNC_SECONDS": str(RESYNC_SECONDS)})
    fast.start()
    try:
        name = _apply_sample(cluster, namespace)
        wait_for(lambda: _ready(cluster, namespace, name), 120, "Ready", fast)
        time.sleep(2)  # the last child events settle

        def metrics() -> str:
            return cluster.kubectl("get", "--raw", "/metrics").stdout

        passes_before = fast.reconciles('result="ok"')
        before = operator_reads(metrics())
        time.sleep(RESYNC_SECONDS * 4 + 1)
        after = operator_reads(metrics())
        passes = fast.reconciles('result="ok"') - passes_before
    finally:
        fast.stop()
        fast.log.unlink(missing_ok=True)
        operator.start()
    after.subtract(before)
    reads = +after
    assert passes >= 3, f"the drift timer ran {passes} passes"
    # One GET of the PaymentService a pass (kubectl reads none of these kinds meanwhile).
    assert reads.pop("GET paymentservices", 0) <= passes + 1
    assert not reads, f"passes read children from the API server: {dict(reads)}"


def test_a_child_whose_managed_by_label_is_removed_is_labelled_again_at_once(
        cluster, namespace, operator):
    name = _apply_sample(cluster, namespace)
    wait_for(lambda: _ready(cluster, namespace, name), 120, "Ready", operator)
    config = f"{name}-config"
    uid = get_json(cluster, "configmap", config, "-n", namespace)["metadata"]["uid"]

    cluster.kubectl("label", "configmap", config, "-n", namespace, f"{MANAGED_BY}-")

    def labelled() -> bool:
        obj = get_json(cluster, "configmap", config, "-n", namespace) or {}
        return (obj.get("metadata", {}).get("labels") or {}).get(MANAGED_BY) == \
            "paydeck-operator"

    # The session operator's drift timer is 300 s: only the watch event can do this.
    wait_for(labelled, 10, "the managed-by label restored", operator)
    assert get_json(cluster, "configmap", config, "-n", namespace)["metadata"]["uid"] == uid


def test_an_operator_starting_beside_many_children_of_one_kind_is_not_stuck(
        cluster, namespace, operator):
    # More labelled ConfigMaps than Kopf's old default of 20 workers a kind: each worker
    # indexes its object and then waits until every listed object is indexed.
    labels = {MANAGED_BY: "paydeck-operator", "paydeck.dev/paymentservice": "gone"}
    items = [{"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": f"left-{i}", "labels": labels}} for i in range(30)]
    cluster.kubectl("apply", "-n", namespace, "-f", "-",
                    input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    operator.stop()
    fresh = OperatorProcess(cluster.kubeconfig, ("--standalone", "-n", namespace))
    fresh.start()
    try:
        name = _apply_sample(cluster, namespace)
        wait_for(lambda: _ready(cluster, namespace, name), 120, "Ready", fresh)
    finally:
        fresh.stop()
        fresh.log.unlink(missing_ok=True)
        operator.start()
