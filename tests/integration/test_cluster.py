"""The local control plane is a real one: schema validation, controllers, GC, kwok pods, Jobs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hack import cluster as local_cluster

pytestmark = pytest.mark.integration

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.paydeck.dev"},
    "spec": {
        "group": "smoke.paydeck.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {"size": {"type": "integer", "minimum": 1, "maximum": 10}},
                }},
            }},
        }],
    },
}


def _widget(name: str, size: object) -> str:
    return json.dumps({"apiVersion": "smoke.paydeck.dev/v1", "kind": "Widget",
                       "metadata": {"name": name}, "spec": {"size": size}})


def test_crd_schema_accepts_valid_and_rejects_invalid(cluster, namespace):
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(WIDGET_CRD))
    local_cluster.wait_established(cluster.kubectl, ["widgets.smoke.paydeck.dev"])
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=_widget("good", 3))
    got = cluster.kubectl("get", "widget", "good", "-n", namespace, "-o", "json")
    assert json.loads(got.stdout)["spec"]["size"] == 3

    bad = cluster.kubectl("create", "-n", namespace, "-f", "-", input=_widget("bad", 42),
                          check=False)
    assert bad.returncode != 0
    assert "spec.size" in bad.stderr and "10" in bad.stderr
    missing = cluster.kubectl("get", "widget", "bad", "-n", namespace, check=False)
    assert missing.returncode != 0


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_deployment_pods_become_ready(cluster, namespace):
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
            },
        },
    }
    cluster.apply(deployment, namespace)
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=90s")
    pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-l", "app=web",
                                      "-o", "json").stdout)["items"]
    ready = [p for p in pods
             if any(c["type"] == "Ready" and c["status"] == "True"
                    for c in p["status"].get("conditions", []))]
    assert len(ready) == 3
    assert {p["spec"]["nodeName"] for p in ready} <= {"kwok-node-0", "kwok-node-1"}
    assert all(p["status"]["phase"] == "Running" for p in ready)


def test_garbage_collection_deletes_owned_child(cluster, namespace):
    cluster.kubectl("create", "configmap", "owner", "-n", namespace)
    uid = cluster.kubectl("get", "configmap", "owner", "-n", namespace,
                          "-o", "jsonpath={.metadata.uid}").stdout
    child = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "child", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]},
    }
    cluster.apply(child, namespace)
    cluster.kubectl("delete", "configmap", "owner", "-n", namespace)
    _wait_for(lambda: cluster.kubectl("get", "configmap", "child", "-n", namespace,
                                      check=False).returncode != 0, 60, "GC of the child")


def test_job_pod_completes(cluster, namespace):
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "migrate"},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "migrate", "image": "example.invalid/migrate:1"}],
            }},
        },
    }
    cluster.apply(job, namespace)
    cluster.kubectl("wait", "--for=condition=Complete", "job/migrate", "-n", namespace,
                    "--timeout=90s")
    phases = cluster.kubectl("get", "pods", "-n", namespace, "-l", "job-name=migrate",
                             "-o", "jsonpath={.items[*].status.phase}").stdout.split()
    assert phases == ["Succeeded"]


@pytest.mark.skipif(bool(os.environ.get("PAYDECK_TEST_KUBECONFIG")),
                    reason="checks the local control plane's own lifecycle")
def test_up_is_fast_and_down_leaves_nothing_behind(capsys):
    state = Path(tempfile.mkdtemp(prefix="paydeck-lifecycle-"))
    lc = local_cluster.Cluster(state)
    started = time.monotonic()
    try:
        lc.up()
        elapsed = time.monotonic() - started
        pids = dict(lc.processes)
        assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager",
                             "kube-scheduler", "kwok"}
        nodes = lc.kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}").stdout
        assert nodes.split() == ["kwok-node-0", "kwok-node-1"]
    finally:
        lc.down()
    with capsys.disabled():
        print(f"\nwarm cluster up: {elapsed:.1f}s")
    # Issue 2's acceptance bound for a warm start (it takes ~5 s here; the figure is printed).
    assert elapsed < 30
    assert not state.exists()
    assert not [pid for pid in pids.values() if local_cluster._alive(pid)]
    assert not list(local_cluster._stray_pids(state))


@pytest.mark.skipif(bool(os.environ.get("PAYDECK_TEST_KUBECONFIG")),
                    reason="checks the local control plane's own lifecycle")
def test_ctrl_c_on_run_tears_everything_down():
    state = Path(tempfile.mkdtemp(prefix="paydeck-ctrlc-"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "hack.cluster", "run", "--dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("cluster running"):
                break
        else:
            raise AssertionError("`hack.cluster run` ended before the cluster was up")
        state_pids = json.loads((state / "state.json").read_text())["processes"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not state.exists()
    assert not [pid for pid in state_pids.values() if local_cluster._alive(pid)]
    assert not list(local_cluster._stray_pids(state))


def test_the_service_range_fits_thousands_of_services(cluster, namespace):
    # An address past the first /24 is allocatable: 1,000 PaymentServices' Services fit.
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "far"},
           "spec": {"clusterIP": "10.0.200.10", "ports": [{"port": 80}]}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(svc))
    got = json.loads(cluster.kubectl("get", "service", "far", "-n", namespace,
                                     "-o", "json").stdout)
    assert got["spec"]["clusterIP"] == "10.0.200.10"
