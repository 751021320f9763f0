"""The API server going silent does not crash the operator; it converges once the server is back."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import condition, get_json, wait_for

pytestmark = pytest.mark.e2e

SAMPLE = Path(__file__).resolve().parents[2] / "manifests" / "samples" / "minimal.yaml"


@pytest.mark.skipif(bool(os.environ.get("PAYDECK_TEST_KUBECONFIG")),
                    reason="freezes the local control plane's kube-apiserver process")
def test_operator_survives_a_frozen_api_server(cluster, namespace, operator):
    ps = yaml.safe_load(SAMPLE.read_text())
    name = ps["metadata"]["name"]
    cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=json.dumps(ps))
    wait_for(lambda: condition(get_json(cluster, "paysvc", name, "-n", namespace),
                               "Ready").get("status") == "True", 120, "Ready", operator)

    apiserver = cluster.local.processes["kube-apiserver"]
    os.kill(apiserver, signal.SIGSTOP)  # connections are accepted, nothing answers
    try:
        time.sleep(8)
        assert operator.proc is not None and operator.proc.poll() is None
    finally:
        os.kill(apiserver, signal.SIGCONT)

    # Back: the operator's watches recover and drift is undone as before.
    cluster.kubectl("scale", "deployment", name, "-n", namespace, "--replicas=5")
    wait_for(lambda: get_json(cluster, "deployment", name, "-n", namespace)["spec"][
        "replicas"] == 2, 60, "drift undone after the outage", operator)
    wait_for(lambda: condition(get_json(cluster, "paysvc", name, "-n", namespace),
                               "Ready").get("status") == "True", 60, "Ready again", operator)
    assert operator.proc.poll() is None
