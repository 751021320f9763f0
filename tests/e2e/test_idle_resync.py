"""An idle resync over unchanged objects writes nothing (counted by the API server itself)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from hack.apiserver_metrics import writes_between
from tests.e2e import secrets
from tests.e2e.conftest import (
    OperatorProcess,
    condition,
    get_json,
    play_sync_controllers,
    wait_for,
)

RESYNC_SECONDS = 3
#: Timer passes read the cache, and every other one or so every child afresh: both kinds
#: run in the measured window.
FRESH_SECONDS = 4

pytestmark = pytest.mark.e2e

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "manifests" / "samples"
# Every sample, with the optional APIs served: HPA, PDB, Ingress, NetworkPolicy, ServiceMonitor,
# PrometheusRule, ExternalSecret/SecretStore and SecretProviderClass all get checked for false
# drift (a field the API server normalises differently would show up as writes).
SAMPLES = ("minimal", "aws", "full")


def test_idle_resync_makes_zero_writes(cluster, namespace, operator, third_party_crds):
    # apiserver_request_total is cluster-wide: first let earlier tests' namespaces go (their
    # garbage collection deletes objects of the same kinds; the session operator must still
    # run to release their PaymentServices' finalizers).
    wait_for(lambda: "Terminating" not in cluster.kubectl("get", "namespaces").stdout, 180,
             "earlier tests' namespaces to finish terminating", operator)
    operator.stop()  # replaced by one with a fast drift timer, watching only this namespace
    fast = OperatorProcess(cluster.kubeconfig, ("--standalone", "-n", namespace),
                           {"PAYDECK_RESYNC_SECONDS": str(RESYNC_SECONDS),
                            "PAYDECK_DRIFT_FRESH_SECONDS": str(FRESH_SECONDS)})
    fast.start()
    try:
        _check_idle_writes(cluster, namespace, fast)
    finally:
        fast.stop()
        fast.log.unlink(missing_ok=True)
        operator.start()


def _check_idle_writes(cluster, namespace, operator):
    names = [f"idle-{sample}" for sample in SAMPLES]
    for sample, name in zip(SAMPLES, names, strict=True):
        ps = yaml.safe_load((SAMPLE_DIR / f"{sample}.yaml").read_text())
        ps["metadata"]["name"] = name
        if ps["spec"].get("kafka", {}).get("topicProvisioner") == "admin":
            # The sample's MSK brokers do not exist here (admin topics against a real broker
            # are tests/e2e/test_topics_admin.py): the topics are taken as existing.
            ps["spec"]["kafka"]["topicProvisioner"] = "none"
        secrets.create_for(cluster, namespace, ps)
        cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-",
                        input=json.dumps(ps))
    # The full sample waits for its ExternalSecret and KafkaTopics (SecretsReady, TopicsReady).
    wait_for(lambda: play_sync_controllers(cluster, namespace) >= 4, 60,
             "the ExternalSecret and KafkaTopics of the full sample, the aws sample's "
             "SecretProviderClass", operator)
    for name in names:
        wait_for(lambda name=name: condition(get_json(cluster, "paysvc", name, "-n", namespace),
                                             "Ready").get("status") == "True",
                 120, f"{name} Ready", operator)
    assert not secrets.missing(cluster, namespace)  # kwok would run pods without them
    time.sleep(2)  # let the last status writes and child events settle

    def metrics() -> str:
        return cluster.kubectl("get", "--raw", "/metrics").stdout

    resyncs_before = operator.reconciles('trigger="resync"', 'result="ok"')
    writes = writes_between(metrics, lambda: time.sleep(RESYNC_SECONDS * 3 + 1))
    assert not writes, f"idle resyncs wrote: {dict(writes)}"
    # ...and the timers really ran in that window: they reconciled and found nothing to do.
    resyncs = operator.reconciles('trigger="resync"', 'result="ok"') - resyncs_before
    assert resyncs >= len(names) * 2
