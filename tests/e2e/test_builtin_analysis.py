"""The built-in paymentSuccess analysis end to end: operator, real Prometheus, real runtimes.

The cluster's pods are kwok's and run nothing, so the two revisions' runtimes run beside the
cluster as processes, each labelling its series with the revision the operator computed (read
from ``status``), as the pods would from ``PAYMENT_REVISION``; Prometheus scrapes them with
the namespace label a ServiceMonitor adds.  The operator (a local process) queries that
Prometheus at ``prometheusAddress``.  Traffic runs from the moment the canary revision is
known until the outcome, so the analysis window (``initialDelay`` = window + a few seconds)
is full of payments on both sides.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from payment_runtime import migrations
from tests.e2e.conftest import wait_for
from tests.e2e.test_rollout import (
    IMAGE_2,
    healthy,
    messages,
    phase_is,
    ps,
    set_image,
    start,
)
from tests.fixtures import _process
from tests.integration.runtime import canary_bed, processes
from tests.integration.runtime.helpers import Signer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

WINDOW_SECONDS = 20
TUNING = {"window": f"{WINDOW_SECONDS}s", "latencyInterval": "3s", "minPayments": 30,
          "minLatencySamples": 4, "maxLatencyIncrease": 1.0}
STEPS = [{"setWeight": 50}, {"analysis": {"count": 1}}]


def _analysis(prometheus: Any, initial_delay: int | None) -> dict[str, Any]:
    spec = {"interval": "5s", "builtin": "paymentSuccess", "prometheusAddress": prometheus.url,
            "paymentSuccess": TUNING, "failureLimit": 0, "inconclusiveLimit": 0}
    if initial_delay is not None:
        spec["initialDelay"] = f"{initial_delay}s"
    return spec


@contextlib.contextmanager
def _canary_with_traffic(
    cluster: Any, namespace: str, operator: Any, prometheus: Any, postgres: Any,
    stripe_mock: Any, tmp_path: Any, canary_fails: bool,
) -> Iterator[None]:
    obj = start(cluster, namespace, operator, steps=STEPS, replicas=2,
                analysis=_analysis(prometheus, WINDOW_SECONDS + 4))
    stable = obj["status"]["stableRevision"]
    set_image(cluster, namespace, IMAGE_2)
    canary = wait_for(lambda: (ps(cluster, namespace).get("status") or {}).get("canaryRevision"),
                      30, "the canary revision", operator)
    dsn = postgres.new_database(prefix="e2e_analysis")
    migrations.migrate(dsn)
    signer = Signer()
    refused = f"http://127.0.0.1:{_process.free_port()}"
    stop = threading.Event()
    with processes.StripeProxy(stripe_mock.api_base, rewrite=processes.authorizing) as stripe:
        bases = {stable: stripe.url, canary: refused if canary_fails else stripe.url}
        with canary_bed.revisions(dsn, signer, tmp_path, prometheus, namespace,
                                  bases) as runtimes:
            token = signer.token("payment_operator")
            threads = [threading.Thread(target=canary_bed.traffic, args=(rt, token),
                                        kwargs={"stop": stop}, daemon=True)
                       for rt in runtimes.values()]
            for thread in threads:
                thread.start()
            try:
                yield
            finally:
                stop.set()
                for thread in threads:
                    thread.join(15)


def test_a_canary_whose_payments_fail_is_aborted_naming_ratios_and_sizes(
    cluster, namespace, operator, prometheus, postgres, stripe_mock, tmp_path
):
    with _canary_with_traffic(cluster, namespace, operator, prometheus, postgres, stripe_mock,
                              tmp_path, canary_fails=True):
        obj = wait_for(phase_is(cluster, namespace, "Degraded"), WINDOW_SECONDS + 60,
                       "the failing canary aborted", operator)
    message = obj["status"]["message"]
    assert "AnalysisFailed" in message, message
    assert "success-ratio=canary 0 vs stable 1 (payments " in message, message
    [ratio, _] = obj["status"]["canary"]["analysis"]["metrics"]
    comparison = ratio["comparison"]
    assert comparison["canaryValue"] == "0" and comparison["stableValue"] == "1"
    assert min(comparison["canarySamples"], comparison["stableSamples"]) >= TUNING["minPayments"]
    assert f"(payments {comparison['canarySamples']} vs {comparison['stableSamples']})" in message
    [aborted] = messages(cluster, namespace, "RolloutAborted")
    assert "success-ratio=canary 0 vs stable 1 (payments " in aborted


def test_a_healthy_canary_is_promoted(
    cluster, namespace, operator, prometheus, postgres, stripe_mock, tmp_path
):
    with _canary_with_traffic(cluster, namespace, operator, prometheus, postgres, stripe_mock,
                              tmp_path, canary_fails=False):
        obj = wait_for(healthy(cluster, namespace, IMAGE_2), WINDOW_SECONDS + 60,
                       "the healthy canary promoted", operator)
    assert obj["status"]["stableImage"] == IMAGE_2


def test_no_traffic_is_inconclusive_and_pauses(cluster, namespace, operator, prometheus):
    prometheus.set_targets([])
    start(cluster, namespace, operator, steps=STEPS, replicas=2,
          analysis=_analysis(prometheus, None))
    set_image(cluster, namespace, IMAGE_2)
    obj = wait_for(phase_is(cluster, namespace, "Paused"), 60, "inconclusive pause", operator)
    message = obj["status"]["message"]
    assert "inconclusive" in message and "fewer than 30 payments on a side" in message, message
    assert obj["status"]["canary"]["analysis"]["phase"] == "Inconclusive"
