"""Reconcile passes through the children cache, against the in-memory API server.

The watch is played by :func:`Watch.sync` (what Kopf's index would hold after the watch events
of every change so far); between syncs the cache only knows the operator's own writes.  A pass
then reads no child from the API server, a pass right after its own writes does not write
again, a child deleted behind the operator's back is created again, and an object of a
child's name that is not ours is never written, cache or not.
"""

import pytest
from payment_operator import builders, reconcile
from payment_operator.api import parse
from payment_operator.coalesce import Coalescer
from payment_operator.kube import cache as child_cache
from payment_operator.kube import resources
from payment_operator.kube.cache import ChildCache
from payment_operator.kube.cached import CachedKube
from payment_operator.topics import AdminClients

from tests.unit.builders.cases import NAMESPACE
from tests.unit.operator.fake_kube import FakeKube
from tests.unit.operator.test_reconcile import NAME, NOW, _ps

pytestmark = pytest.mark.unit

CHILD_KINDS = {r.kind for r in resources.CORE_CHILDREN}
MANAGED = ("app.kubernetes.io/managed-by", "paydeck-operator")


class Watch:
    """Kopf's indices of the core child kinds over the fake API server's objects, and the
    handlers' hooks: ``seen`` for every object indexed, ``gone`` for every one deleted."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube
        self.cache = ChildCache()
        self.bases: dict[resources.Resource, dict] = {r: {} for r in resources.CORE_CHILDREN}
        self.cache.attach(self.bases)
        self.cache.trust(resources.CORE_CHILDREN)
        self.known: dict[tuple[str, str, str], dict] = {}

    def sync(self) -> None:
        now = {}
        for resource, base in self.bases.items():
            base.clear()
            for key, obj in self.kube.objects.items():
                labels = obj["metadata"].get("labels") or {}
                if key[0] == resource.kind and labels.get(MANAGED[0]) == MANAGED[1]:
                    for entry, value in child_cache.index_entries(
                            obj, resource.api_version, key[0]).items():
                        base.setdefault(entry, []).append(value)
                    now[key] = obj
                    self.cache.seen(obj)
        for key, obj in self.known.items():
            if key not in now:
                self.cache.gone(obj)
        self.known = {k: dict(v) for k, v in now.items()}


@pytest.fixture
def world():
    kube = FakeKube()
    _ps(kube)
    watch = Watch(kube)
    return kube, watch, CachedKube(kube, watch.cache)


def _pass(kube, *, prune=True, trigger="test"):
    return reconcile.reconcile(
        kube, Coalescer(), NAMESPACE, NAME, builders.Context(),
        kafka_admins=AdminClients(timeout=1.0), trigger=trigger, prune_children=prune, now=NOW)


def _child_reads(kube: FakeKube) -> list[tuple[str, str, str]]:
    return [c for c in kube.calls if c[0] in ("get", "list") and c[1] in CHILD_KINDS]


def _set_ready(kube: FakeKube) -> None:
    """The Deployment controller's part: every pod of every Deployment ready."""
    for (kind, _, _), obj in kube.objects.items():
        if kind == "Deployment":
            n = obj["spec"]["replicas"]
            obj["status"] = {"replicas": n, "readyReplicas": n, "updatedReplicas": n}
            obj["metadata"]["resourceVersion"] = str(next(kube._versions))


def test_a_pass_reads_no_child_from_the_api_server(world):
    kube, watch, cached = world
    _pass(cached)  # creates every child
    watch.sync()
    _set_ready(kube)
    watch.sync()
    kube.calls.clear()

    _pass(cached, prune=True)

    assert _child_reads(kube) == []
    assert [c for c in kube.calls if c[0] == "get"] == [("get", "PaymentService", NAME)]
    status = kube.stored("PaymentService", NAMESPACE, NAME)["status"]
    assert status["phase"] == "Healthy"
    kube.calls.clear()
    assert _pass(cached, trigger="resync").events == []
    assert kube.calls == [("get", "PaymentService", NAME)]  # one request: the object itself


def test_right_after_its_own_writes_a_pass_does_not_write_again(world):
    kube, _, cached = world
    _pass(cached)  # every child created; the watch has shown none of it
    kube.calls.clear()

    _pass(cached)

    assert [w for w in kube.writes() if w[1] in CHILD_KINDS] == []
    assert _child_reads(kube) == []


def test_a_child_deleted_behind_the_operators_back_is_created_again(world):
    kube, watch, cached = world
    _pass(cached)
    watch.sync()
    config = builders.meta.config_map_name(parse(kube.stored("PaymentService", NAMESPACE,
                                                             NAME)))
    del kube.objects[("ConfigMap", NAMESPACE, config)]
    watch.sync()  # the watch delivers the deletion
    kube.calls.clear()

    _pass(cached, prune=False)

    assert ("apply", "ConfigMap", config) in kube.writes()
    assert kube.stored("ConfigMap", NAMESPACE, config) is not None


def test_a_pruned_child_is_not_deleted_twice_before_the_watch_shows_the_deletion(world):
    kube, watch, cached = world
    _pass(cached)
    watch.sync()
    stray = kube.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "pay-old", "namespace": NAMESPACE,
        "labels": dict(next(o for (k, _, _), o in kube.objects.items()
                            if k == "ConfigMap")["metadata"]["labels"]),
        "ownerReferences": kube.stored("ConfigMap", NAMESPACE, "pay-config")["metadata"][
            "ownerReferences"]}})
    watch.sync()
    _pass(cached, prune=True)
    assert ("delete", "ConfigMap", "pay-old") in kube.writes()
    assert stray["metadata"]["uid"]
    kube.calls.clear()

    _pass(cached, prune=True)  # the watch still shows it

    assert kube.writes() == []


def test_a_foreign_object_of_a_childs_name_is_not_written_though_the_cache_misses_it(world):
    kube, watch, cached = world
    foreign = kube.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "pay-config", "namespace": NAMESPACE}, "data": {"theirs": "1"}})
    watch.sync()  # not labelled as ours: not in the cache

    outcome = _pass(cached)

    assert kube.stored("ConfigMap", NAMESPACE, "pay-config") == foreign
    assert outcome.failure is not None and outcome.failure.reason == "ConflictingObject"
    assert not any(k == "Deployment" for k, _, _ in kube.objects)


def test_the_users_rate_table_configmap_is_read_past_the_cache(world):
    # The cache holds only ConfigMaps the operator manages: the user's rate table (named by
    # spec.currencies) would always look missing there, and the gate would never open.
    from payment_operator.kube import observe

    kube, watch, cached = world
    ps = parse({**kube.stored("PaymentService", NAMESPACE, NAME), "spec": {
        **kube.stored("PaymentService", NAMESPACE, NAME)["spec"],
        "currencies": {"reporting": "EUR", "ratesConfigMap": {"name": "fx", "key": "rates"}}}})
    watch.sync()
    assert observe.rates_config_map(cached, ps) is None
    kube.add({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "fx", "namespace": NAMESPACE}, "data": {"rates": "{}"}})
    watch.sync()  # not ours: never indexed
    found = observe.rates_config_map(cached, ps)
    assert found is not None and found["data"] == {"rates": "{}"}
