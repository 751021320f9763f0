"""Two operator replicas do not fight: Kopf peering pauses the lower-priority one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hack.cluster import wait_established
from tests.e2e.conftest import OperatorProcess, condition, get_json, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _peers(cluster, namespace: str) -> int:
    peering = get_json(cluster, "kopfpeering", "paydeck", "-n", namespace) or {}
    return len(peering.get("status") or {})


def test_lower_priority_replica_pauses_and_the_other_reconciles(cluster, namespace, operator):
    cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds" / "kopf-peering.yaml"))
    wait_established(cluster.kubectl, ["kopfpeerings.kopf.dev"])
    peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
               "metadata": {"name": "paydeck", "namespace": namespace}}
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(peering))

    operator.stop()  # the session's standalone operator would reconcile this namespace too
    low = OperatorProcess(cluster.kubeconfig, ("-n", namespace), {"PAYDECK_PRIORITY": "100"})
    high = OperatorProcess(cluster.kubeconfig, ("-n", namespace), {"PAYDECK_PRIORITY": "200"})
    try:
        high.start()
        wait_for(lambda: "Resuming operations" in high.log.read_text(), 60,
                 "the high-priority replica to take the lead", high)
        low.start()
        wait_for(lambda: _peers(cluster, namespace) == 2, 60, "both replicas to register", low)
        ps = yaml.safe_load((ROOT / "manifests" / "samples" / "minimal.yaml").read_text())
        cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-",
                        input=json.dumps(ps))
        name = ps["metadata"]["name"]
        wait_for(lambda: condition(get_json(cluster, "paysvc", name, "-n", namespace),
                                   "Ready").get("status") == "True", 120, "Ready", high)
        assert high.reconciles() > 0
        assert low.reconciles() == 0

        # The leader goes away (it unregisters on a clean stop): the other one takes over.
        high.stop()
        cluster.kubectl("scale", "paysvc", name, "-n", namespace, "--replicas=3")
        rev = get_json(cluster, "paysvc", name, "-n", namespace)["status"]["stableRevision"]
        wait_for(lambda: get_json(cluster, "deployment", f"{name}-{rev}", "-n", namespace)[
            "spec"]["replicas"] == 3, 60, "the remaining replica to reconcile", low)
        assert low.reconciles() > 0
    finally:
        low.stop()
        high.stop()
        for op in (low, high):
            op.log.unlink(missing_ok=True)
        operator.start()
