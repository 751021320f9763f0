"""An API server that goes silent for longer than every client timeout of the operator, while
a rollout's pause ends: the operator survives, and the rollout resumes afterwards without a
restart of the operator."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.e2e.conftest import get_json, wait_for
from tests.e2e.test_rollout import IMAGE_1, IMAGE_2, NAME, at_step, deployments, healthy, service

pytestmark = pytest.mark.e2e

#: Short client timeouts for this test's operator; the freeze outlasts every one of them.
TIMEOUTS = {
    "PAYDECK_API_TIMEOUT_SECONDS": "5",
    "PAYDECK_REQUEST_TIMEOUT_SECONDS": "8",
    "PAYDECK_WATCH_SERVER_TIMEOUT_SECONDS": "10",
    "PAYDECK_WATCH_CLIENT_TIMEOUT_SECONDS": "12",
}
FREEZE_SECONDS = 20
PAUSE = "6s"


@pytest.fixture
def short_timeouts(operator):
    """The session operator, restarted with short client timeouts for this test only."""
    operator.stop()
    before = dict(operator.extra_env)
    operator.extra_env.update(TIMEOUTS)
    operator.start()
    yield operator
    operator.stop()
    operator.extra_env = before
    operator.start()


@pytest.mark.skipif(bool(os.environ.get("PAYDECK_TEST_KUBECONFIG")),
                    reason="freezes the local control plane's kube-apiserver process")
def test_rollout_resumes_after_an_api_outage_longer_than_the_timeouts(
        cluster, namespace, short_timeouts):
    operator = short_timeouts
    apply = ["apply", "--server-side", "--field-manager=gitops", "-n", namespace, "-f", "-"]
    steps = [{"setWeight": 50}, {"pause": {"duration": PAUSE}}]
    cluster.kubectl(*apply, input=json.dumps(service(steps=steps)))
    wait_for(healthy(cluster, namespace, IMAGE_1), 90, "the first revision Healthy", operator)
    cluster.kubectl("patch", "paysvc", NAME, "-n", namespace, "--type=merge",
                    "-p", json.dumps({"spec": {"image": IMAGE_2}}))
    wait_for(at_step(cluster, namespace, 1, 50), 60, "the pause at 50%", operator)
    pid = operator.proc.pid

    apiserver = cluster.local.processes["kube-apiserver"]
    os.kill(apiserver, signal.SIGSTOP)  # connections are accepted, nothing answers
    try:
        # The pause ends during the freeze: its requeue meets a silent API server.
        time.sleep(FREEZE_SECONDS)
        assert operator.proc is not None and operator.proc.poll() is None
    finally:
        os.kill(apiserver, signal.SIGCONT)

    # Back: the rollout goes on to promotion, and drift is undone as before.
    obj = wait_for(healthy(cluster, namespace, IMAGE_2), 90, "promotion after the outage",
                   operator)
    assert deployments(cluster, namespace) == {IMAGE_1: (0, 0), IMAGE_2: (4, 4)}
    stable = f"{NAME}-{obj['status']['stableRevision']}"
    cluster.kubectl("scale", "deployment", stable, "-n", namespace, "--replicas=5")
    wait_for(lambda: get_json(cluster, "deployment", stable, "-n", namespace)["spec"][
        "replicas"] == 4, 60, "drift undone after the outage", operator)
    assert operator.proc.poll() is None and operator.proc.pid == pid  # never restarted
