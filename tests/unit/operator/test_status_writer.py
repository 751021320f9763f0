"""The one status writer: no-op writes skipped, conflicts re-read and retried, then given up."""

import pytest
from payment_operator.kube import status
from payment_operator.kube.client import KubeError

from tests.unit.operator.fake_kube import FakeKube

pytestmark = pytest.mark.unit

NS, NAME = "ns", "pay"


def conflict() -> KubeError:
    return KubeError(409, "Conflict", "the object has been modified")


def _ps(kube: FakeKube, **status_: object) -> dict:
    body = {"apiVersion": "paydeck.dev/v1alpha1", "kind": "PaymentService",
            "metadata": {"name": NAME, "namespace": NS}, "spec": {}}
    if status_:
        body["status"] = dict(status_)
    return kube.add(body)


class Compute:
    """A compute function that records the objects it was given."""

    def __init__(self, result=None) -> None:
        self.seen: list[dict] = []
        self.result = result or {"phase": "Healthy"}

    def __call__(self, current: dict) -> dict:
        self.seen.append(current)
        return self.result(current) if callable(self.result) else dict(self.result)


def _patches(kube: FakeKube) -> int:
    return sum(1 for verb, _, _ in kube.calls if verb == "patch_status")


def test_an_unchanged_status_is_not_written():
    kube = FakeKube()
    obj = _ps(kube, phase="Healthy", message="fine")
    written, latest = status.write(kube, obj, Compute({"phase": "Healthy"}))
    assert (written, latest) == (False, obj)
    assert _patches(kube) == 0


def test_the_write_is_guarded_by_the_resource_version_it_read():
    kube = FakeKube()
    obj = _ps(kube)
    kube.touch("PaymentService", NS, NAME)  # someone wrote after our read
    compute = Compute()
    written, latest = status.write(kube, obj, compute)
    assert written and latest["status"] == {"phase": "Healthy"}
    assert _patches(kube) == 2  # the stale write was refused, the fresh one accepted
    assert compute.seen[1]["metadata"]["generation"] == 2  # recomputed from the re-read


def test_a_conflict_then_success_recomputes_from_the_fresh_object():
    kube = FakeKube()
    obj = _ps(kube, phase="Progressing", note="kept")
    kube.status_errors = [conflict()]
    kube.objects[("PaymentService", NS, NAME)]["status"]["note"] = "written by someone else"

    compute = Compute(lambda current: {"phase": "Healthy",
                                       "seenNote": current["status"]["note"]})
    written, latest = status.write(kube, obj, compute)

    assert written
    assert latest["status"]["seenNote"] == "written by someone else"
    assert [verb for verb, _, _ in kube.calls] == ["patch_status", "get", "patch_status"]
    assert len(compute.seen) == 2


def test_five_conflicts_in_a_row_raise():
    kube = FakeKube()
    obj = _ps(kube)
    kube.status_errors = [conflict() for _ in range(status.MAX_ATTEMPTS)]
    with pytest.raises(KubeError) as caught:
        status.write(kube, obj, Compute())
    assert caught.value.status == 409
    assert "kept changing" in caught.value.message
    assert _patches(kube) == status.MAX_ATTEMPTS
    assert "status" not in kube.stored("PaymentService", NS, NAME)


def test_four_conflicts_then_success_is_fine():
    kube = FakeKube()
    obj = _ps(kube)
    kube.status_errors = [conflict() for _ in range(status.MAX_ATTEMPTS - 1)]
    written, _ = status.write(kube, obj, Compute())
    assert written and _patches(kube) == status.MAX_ATTEMPTS


def test_an_object_gone_on_re_read_is_not_written():
    kube = FakeKube()
    obj = _ps(kube)

    def deleted(fake: FakeKube) -> None:
        fake.objects.pop(("PaymentService", NS, NAME))

    kube.before_status_patch = deleted
    kube.status_errors = [conflict()]
    written, latest = status.write(kube, obj, Compute())
    assert (written, latest) == (False, obj)
    assert _patches(kube) == 1


def test_a_compute_that_backs_off_after_a_conflict_writes_nothing():
    """The generation moved between read and write: compute answers {} and nothing is written."""
    kube = FakeKube()
    obj = _ps(kube)
    read_generation = obj["metadata"]["generation"]
    kube.touch("PaymentService", NS, NAME)

    def compute(current: dict) -> dict:
        if current["metadata"]["generation"] != read_generation:
            return {}
        return {"phase": "Healthy"}

    written, latest = status.write(kube, obj, compute)
    assert not written
    assert latest["metadata"]["generation"] == read_generation + 1
    assert "status" not in kube.stored("PaymentService", NS, NAME)


def test_other_errors_are_raised_at_once():
    kube = FakeKube()
    obj = _ps(kube)
    kube.status_errors = [KubeError(500, "InternalError", "etcd timeout")]
    with pytest.raises(KubeError) as caught:
        status.write(kube, obj, Compute())
    assert caught.value.status == 500 and _patches(kube) == 1
