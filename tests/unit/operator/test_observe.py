"""Reading a PaymentService's revisions: their Deployments, and a stuck container's reason
from the pods, which are listed only while some pod is not ready."""

import pytest
from payment_operator import api, builders
from payment_operator.kube import observe

from tests.unit.builders.cases import NAMESPACE, minimal_body
from tests.unit.operator.fake_kube import FakeKube

pytestmark = pytest.mark.unit
UID = "00000000-0000-4000-8000-000000000001"


def _deployment(ps, rev, replicas, ready):
    labels = {**builders.meta.child_labels(ps), builders.meta.LABEL_REVISION: rev}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"pay-{rev}", "namespace": NAMESPACE, "labels": labels,
                         "ownerReferences": [{"uid": UID, "controller": True}]},
            "spec": {"replicas": replicas,
                     "template": {"spec": {"containers": [{"image": "img"}]}}},
            "status": {"replicas": replicas, "readyReplicas": ready}}


def _pod(ps, rev, waiting):
    labels = {**builders.meta.child_labels(ps), builders.meta.LABEL_REVISION: rev}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"pay-{rev}-x", "namespace": NAMESPACE, "labels": labels},
            "status": {"containerStatuses": [{"state": {"waiting": {
                "reason": waiting, "message": "back-off restarting"}}}]}}


def test_pods_are_listed_only_while_some_pod_is_not_ready():
    body = minimal_body()
    body["metadata"]["uid"] = UID
    ps = api.parse(body)
    kube = FakeKube()
    kube.add(_deployment(ps, "aaa", 2, 2))
    revs = observe.revisions(kube, ps, UID)
    assert revs.workloads["aaa"].ready == 2
    assert [c for c in kube.calls if c[1] == "Pod"] == []  # all ready: nothing to look for

    kube.add(_deployment(ps, "bbb", 1, 0))
    kube.add(_pod(ps, "bbb", "CrashLoopBackOff"))
    revs = observe.revisions(kube, ps, UID)
    assert [c[0] for c in kube.calls if c[1] == "Pod"] == ["list"]
    assert revs.workloads["bbb"].problem_reason == "CrashLoopBackOff"
    assert "pay-bbb-x: CrashLoopBackOff: back-off restarting" in revs.workloads["bbb"].problem
    assert revs.workloads["aaa"].problem_reason in (None, "")
