"""Observing the revisions: the pods are listed only while some revision is not all ready, and
a stuck container is then reported on its revision."""

import pytest
from payment_operator.api import parse
from payment_operator.kube import observe

from tests.unit.builders.cases import NAMESPACE, UID, minimal_body
from tests.unit.operator.fake_kube import FakeKube

pytestmark = pytest.mark.unit

LABELS = {"app.kubernetes.io/name": "payment-service", "app.kubernetes.io/instance": "pay"}
OWNER = {"apiVersion": "paydeck.dev/v1alpha1", "kind": "PaymentService", "name": "pay",
         "uid": UID, "controller": True}


def _deployment(kube: FakeKube, rev: str, replicas: int, ready: int) -> None:
    kube.add({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
        "name": f"pay-{rev}", "namespace": NAMESPACE, "ownerReferences": [OWNER],
        "labels": {**LABELS, "paydeck.dev/revision": rev}},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [
            {"name": "payment-runtime", "image": "img:1"}]}}},
        "status": {"replicas": replicas, "readyReplicas": ready}})


def _stuck_pod(kube: FakeKube, rev: str) -> None:
    kube.add({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"pay-{rev}-abc", "namespace": NAMESPACE,
        "labels": {**LABELS, "paydeck.dev/revision": rev}},
        "status": {"containerStatuses": [{"name": "payment-runtime", "state": {
            "waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m"}}}]}})


def _pod_lists(kube: FakeKube) -> int:
    return sum(1 for verb, kind, _ in kube.calls if (verb, kind) == ("list", "Pod"))


def test_all_pods_ready_lists_no_pod():
    kube = FakeKube()
    _deployment(kube, "r1", 3, 3)
    _deployment(kube, "r2", 1, 1)
    revs = observe.revisions(kube, parse(minimal_body()), UID)
    assert set(revs.workloads) == {"r1", "r2"}
    assert _pod_lists(kube) == 0


def test_a_revision_not_all_ready_lists_the_pods_and_reports_a_stuck_container():
    kube = FakeKube()
    _deployment(kube, "r1", 3, 3)
    _deployment(kube, "r2", 1, 0)
    _stuck_pod(kube, "r2")
    revs = observe.revisions(kube, parse(minimal_body()), UID)
    assert _pod_lists(kube) == 1
    assert revs.workloads["r2"].problem_reason == "CrashLoopBackOff"
    assert "back-off 5m" in revs.workloads["r2"].problem
    assert revs.workloads["r1"].problem == ""


def test_more_pods_than_ready_ones_count_as_not_settled():
    assert not observe.settled(observe.Workload("r", replicas=2, pods=3, ready=2, image="i"))
    assert not observe.settled(observe.Workload("r", replicas=3, pods=2, ready=2, image="i"))
    assert observe.settled(observe.Workload("r", replicas=2, pods=2, ready=2, image="i"))
