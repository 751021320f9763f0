"""ParentCache: the newest PaymentService seen is kept, a deletion is not undone by a late
copy, and readers get copies."""

from __future__ import annotations

from payment_operator.kube.parents import ParentCache


def _ps(version: int, replicas: int = 2, name: str = "svc") -> dict:
    return {"apiVersion": "paydeck.dev/v1alpha1", "kind": "PaymentService",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version),
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"replicas": replicas}}


def test_the_newer_version_wins_whatever_the_order():
    cache = ParentCache()
    cache.offer(_ps(5, replicas=3))
    cache.offer(_ps(4, replicas=9))  # a late event of an older version
    held = cache.get("ns", "svc")
    assert held is not None and held["spec"]["replicas"] == 3
    assert "managedFields" not in held["metadata"]
    cache.offer(_ps(6, replicas=4))
    assert cache.get("ns", "svc")["spec"]["replicas"] == 4


def test_a_deleted_service_is_not_taken_back_by_a_copy_read_before_the_deletion():
    cache = ParentCache()
    cache.offer(_ps(5))
    cache.deleted(_ps(7))
    assert cache.get("ns", "svc") is None and len(cache) == 0
    cache.offer(_ps(6))  # a pass's GET or write answer from before the deletion
    cache.offer(_ps(7))
    assert cache.get("ns", "svc") is None
    cache.offer(_ps(9, replicas=1))  # created again under the same name
    assert cache.get("ns", "svc")["spec"]["replicas"] == 1


def test_readers_get_copies():
    cache = ParentCache()
    cache.offer(_ps(1))
    cache.get("ns", "svc")["spec"]["replicas"] = 99
    assert cache.get("ns", "svc")["spec"]["replicas"] == 2
    assert cache.get("ns", "other") is None
