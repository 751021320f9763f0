"""Applying children: the write budget stops a fight with another controller, and no object
this PaymentService does not control is ever written (nor pruned)."""

import copy

import pytest
from payment_operator.kube import resources
from payment_operator.kube.apply import (
    ApplyResult,
    FightingError,
    UpdateBudget,
    apply_all,
    prune,
)
from payment_operator.kube.client import KubeError

pytestmark = pytest.mark.unit


def test_budget_allows_the_limit_then_refuses_then_recovers():
    budget = UpdateBudget(limit=3, window=60)
    for t in (0, 1, 2):
        budget.spend("ns/Deployment/x", t, "a")
    with pytest.raises(FightingError, match="written 3 times in 60s with the same manifest"):
        budget.spend("ns/Deployment/x", 3, "a")
    budget.spend("ns/Deployment/other", 3, "a")  # budgets are per child
    budget.spend("ns/Deployment/x", 61.5, "a")  # the oldest updates left the window


def test_writes_of_a_changing_manifest_are_no_fight():
    # A canary moves each Deployment once per replica: every write a new manifest.
    budget = UpdateBudget(limit=3, window=60)
    for t in range(40):
        budget.spend("ns/Deployment/x", t, f"replicas-{t}")
    # Writing one manifest back again and again still is.
    for t in (40, 41):
        budget.spend("ns/Deployment/x", t, "replicas-4")  # and once before, at t = 4
    with pytest.raises(FightingError):
        budget.spend("ns/Deployment/x", 42, "replicas-4")


# ---- ownership: never write an object this PaymentService does not control -------------

UID = "ps-uid"


class FakeKube:
    """Just enough of :class:`Kube` for apply/prune: objects by (kind, name), calls recorded.

    Like the API server, an apply honours a ``metadata.resourceVersion`` precondition (409
    when the object exists at another version) and, without force and without one, merges
    into an existing object whose fields do not conflict.
    """

    def __init__(self, *objects):
        self.objects = {(o["kind"], o["metadata"]["name"]): copy.deepcopy(o) for o in objects}
        self.applies: list[tuple[str, bool]] = []
        self.deleted: list[str] = []
        self.before_write = None  # called once before the next apply: a racing writer
        self.version = 100

    def get(self, resource, namespace, name):
        obj = self.objects.get((resource.kind, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list_objects(self, resource, namespace, selector=""):
        return [copy.deepcopy(o) for (kind, _), o in self.objects.items()
                if kind == resource.kind]

    def apply(self, manifest, resource, *, force):
        key = (manifest["kind"], manifest["metadata"]["name"])
        self.applies.append((f"{key[0]}/{key[1]}", force))
        if self.before_write is not None:
            race, self.before_write = self.before_write, None
            race(self)
        meta = dict(manifest["metadata"])
        wanted = meta.pop("resourceVersion", None)
        live = self.objects.get(key)
        if live is not None and wanted not in (None, live["metadata"]["resourceVersion"]):
            raise KubeError(409, "Conflict", "the object has been modified")
        self.version += 1
        live = self.objects.setdefault(key, {"metadata": {"uid": f"uid-{key[1]}"}})
        live.update({k: v for k, v in manifest.items() if k != "metadata"})
        live["metadata"] = {**live["metadata"], **meta, "resourceVersion": str(self.version)}
        return copy.deepcopy(live)

    def json_patch(self, resource, namespace, name, ops):
        raise AssertionError("not expected")

    def delete(self, resource, namespace, name, uid):
        del self.objects[(resource.kind, name)]
        self.deleted.append(f"{resource.kind}/{name}")


def _owner(uid=UID, controller=True, kind="PaymentService", name="x"):
    return {"apiVersion": "paydeck.dev/v1alpha1", "kind": kind, "name": name, "uid": uid,
            "controller": controller, "blockOwnerDeletion": True}


def _child(kind, name, api_version="v1", owners=(), **body):
    meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "7",
            "labels": {"paydeck.dev/paymentservice": "x"}}
    if owners:
        meta["ownerReferences"] = list(owners)
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **body}


def _desired(kind, name, api_version="v1", **body):
    manifest = _child(kind, name, api_version, owners=[_owner()], **body)
    del manifest["metadata"]["uid"], manifest["metadata"]["resourceVersion"]
    return manifest


def _netpol(name, owners=(), selector=None):
    spec = {"podSelector": selector or {}, "policyTypes": ["Ingress", "Egress"]}
    return _child("NetworkPolicy", name, "networking.k8s.io/v1", owners=owners, spec=spec)


def test_an_unowned_object_is_left_alone_and_reported_while_the_others_are_created():
    deny_all = _netpol("x")
    kube = FakeKube(deny_all)
    desired = [
        _desired("ServiceAccount", "x"),
        _desired("NetworkPolicy", "x", "networking.k8s.io/v1",
                 spec={"podSelector": {"matchLabels": {"app": "x"}}}),
        _desired("Service", "x", spec={"ports": [{"name": "http", "port": 80}]}),
    ]
    result = apply_all(kube, desired)
    assert kube.objects[("NetworkPolicy", "x")] == deny_all
    assert result.conflicts == [
        "NetworkPolicy/x exists and is not owned by this PaymentService (owner: none)"]
    assert result.created == ["ServiceAccount/x", "Service/x"]
    assert ("NetworkPolicy", "x") not in result.live
    assert kube.applies == [("ServiceAccount/x", False), ("Service/x", False)]


@pytest.mark.parametrize("resource", [r for r in resources.KNOWN if r.child],
                         ids=lambda r: r.kind)
@pytest.mark.parametrize("owners", [
    [],
    [_owner(uid="other-uid")],
    [_owner(controller=False)],
    [_owner(controller=False), _owner(uid="rs", kind="ReplicaSet", name="rs-1")],
], ids=["no-owner", "other-paymentservice", "ours-not-controller", "other-controller"])
def test_no_child_kind_is_written_when_another_controls_it(resource, owners):
    existing = _child(resource.kind, "x", resource.api_version, owners=owners,
                      spec={"theirs": True})
    kube = FakeKube(existing)
    result = apply_all(kube, [_desired(resource.kind, "x", resource.api_version,
                                       spec={"ours": True})])
    assert kube.applies == []
    assert kube.objects[(resource.kind, "x")] == existing
    assert len(result.conflicts) == 1 and result.writes == 0
    assert result.conflicts[0].startswith(f"{resource.kind}/x exists and is not owned")


def test_the_conflict_message_names_the_controller():
    kube = FakeKube(_child("Service", "x", owners=[_owner(uid="o", kind="Gateway", name="gw")]))
    result = apply_all(kube, [_desired("Service", "x", spec={"type": "ClusterIP"})])
    assert result.conflicts == [
        "Service/x exists and is not owned by this PaymentService (owner: Gateway/gw)"]


def test_the_workload_is_held_back_while_a_child_it_would_use_is_not_ours():
    # Pods reading a foreign ConfigMap would take its settings (a JWKS URL, a Stripe base).
    kube = FakeKube(_child("ConfigMap", "x-config", data={"PAYMENT_JWKS_URL": "http://evil"}))
    desired = [
        _desired("ConfigMap", "x-config", data={"PAYMENT_PORT": "8080"}),
        _desired("Deployment", "x", "apps/v1", spec={"replicas": 2}),
        _desired("Service", "x", spec={"type": "ClusterIP"}),
    ]
    result = apply_all(kube, desired)
    assert ("Deployment", "x") not in kube.objects
    assert result.created == ["Service/x"]
    assert result.conflicts == [
        "ConfigMap/x-config exists and is not owned by this PaymentService (owner: none)",
        "Deployment/x is not applied while another child is not owned by this PaymentService",
    ]


def test_our_own_children_are_updated_with_force():
    ours = _child("Service", "x", owners=[_owner()], spec={"type": "NodePort"})
    kube = FakeKube(ours)
    result = apply_all(kube, [_desired("Service", "x", spec={"type": "ClusterIP"})])
    assert kube.applies == [("Service/x", True)]
    assert result.updated == ["Service/x"] and result.conflicts == []
    assert kube.objects[("Service", "x")]["spec"] == {"type": "ClusterIP"}


def test_a_create_that_loses_a_race_to_a_foreign_object_is_a_conflict():
    kube = FakeKube()
    foreign = _child("Service", "x", spec={"type": "NodePort"})
    kube.before_write = lambda k: k.objects.setdefault(("Service", "x"), copy.deepcopy(foreign))
    result = apply_all(kube, [_desired("Service", "x", spec={"type": "ClusterIP"})])
    assert kube.applies == [("Service/x", False)]
    assert kube.objects[("Service", "x")] == foreign
    assert result.created == [] and result.conflicts == [
        "Service/x exists and is not owned by this PaymentService (owner: none)"]


def test_a_create_that_loses_a_race_to_our_own_object_updates_it():
    kube = FakeKube()
    ours = _child("Service", "x", owners=[_owner()], spec={"type": "NodePort"})
    kube.before_write = lambda k: k.objects.setdefault(("Service", "x"), copy.deepcopy(ours))
    result = apply_all(kube, [_desired("Service", "x", spec={"type": "ClusterIP"})])
    assert kube.applies == [("Service/x", False), ("Service/x", True)]
    assert result.updated == ["Service/x"] and result.conflicts == []


def test_an_update_that_loses_a_race_to_a_foreign_object_is_a_conflict():
    kube = FakeKube(_child("Service", "x", owners=[_owner()], spec={"type": "NodePort"}))
    foreign = _child("Service", "x", spec={"type": "NodePort"})
    foreign["metadata"].update(uid="theirs", resourceVersion="9")

    def replace(k):  # ours deleted and someone else's created between our read and write
        k.objects[("Service", "x")] = copy.deepcopy(foreign)

    kube.before_write = replace
    result = apply_all(kube, [_desired("Service", "x", spec={"type": "ClusterIP"})])
    assert kube.applies == [("Service/x", True)]
    assert kube.objects[("Service", "x")] == foreign
    assert result.updated == [] and result.conflicts == [
        "Service/x exists and is not owned by this PaymentService (owner: none)"]


def test_other_create_failures_propagate():
    kube = FakeKube()

    def refuse(manifest, resource, *, force):
        raise KubeError(403, "Forbidden", "quota")

    kube.apply = refuse
    with pytest.raises(KubeError, match="403"):
        apply_all(kube, [_desired("Service", "x", spec={"type": "ClusterIP"})])


def test_prune_deletes_only_children_this_paymentservice_controls():
    kube = FakeKube(
        _netpol("unowned"),
        _netpol("other-controller", owners=[_owner(uid="other-uid")]),
        _netpol("ours-not-controller", owners=[_owner(controller=False)]),
        _netpol("ours-unwanted", owners=[_owner()]),
        _netpol("ours-wanted", owners=[_owner()]),
    )
    result = ApplyResult()
    netpol = resources.by_kind("networking.k8s.io/v1", "NetworkPolicy")
    prune(kube, "ns", UID, "paydeck.dev/paymentservice=x", [netpol],
          {("NetworkPolicy", "ours-wanted")}, result)
    assert kube.deleted == ["NetworkPolicy/ours-unwanted"] == result.pruned
    assert set(kube.objects) == {("NetworkPolicy", n) for n in (
        "unowned", "other-controller", "ours-not-controller", "ours-wanted")}


# ---- the children's cache: a stale copy is never a reason to write -----------------------

class CountingKube(FakeKube):
    def __init__(self, *objects):
        super().__init__(*objects)
        self.gets: list[str] = []

    def get(self, resource, namespace, name):
        self.gets.append(f"{resource.kind}/{name}")
        return super().get(resource, namespace, name)


def _cache_of(*objects):
    from payment_operator.kube.cache import ChildCache

    cache = ChildCache()
    for obj in objects:
        cache.observe("MODIFIED", obj)
    return cache


def test_children_the_watches_saw_are_not_read_again():
    from payment_operator.kube import drift

    desired = _desired("Service", "x", spec={"type": "ClusterIP"})
    ours = drift.with_hash(desired)  # as the operator applied it, as the watch delivered it
    ours["metadata"].update(uid="uid-x", resourceVersion="7")
    kube = CountingKube(ours)
    result = apply_all(kube, [desired, _desired("ServiceAccount", "x")], _cache_of(ours))
    assert kube.gets == ["ServiceAccount/x"]  # not in the cache: a GET, then created
    assert result.created == ["ServiceAccount/x"] and result.updated == []
    assert result.live[("Service", "x")]["spec"] == {"type": "ClusterIP"}


def test_a_stale_copy_of_our_child_replaced_by_a_foreign_object_is_never_written():
    # The cache still holds our Service; meanwhile it was deleted and someone created their
    # own of that name, without our labels (so no watch event reached the cache).
    ours = _child("Service", "x", owners=[_owner()], spec={"type": "NodePort"})
    foreign = _child("Service", "x", spec={"type": "LoadBalancer"})
    foreign["metadata"].update(uid="theirs", resourceVersion="42", labels={})
    kube = CountingKube(foreign)
    result = apply_all(kube, [_desired("Service", "x", spec={"type": "ClusterIP"})],
                       _cache_of(ours))
    assert kube.objects[("Service", "x")] == foreign  # the forced apply failed its precondition
    assert kube.gets == ["Service/x"]  # read again after the 409
    assert result.updated == [] and result.conflicts == [
        "Service/x exists and is not owned by this PaymentService (owner: none)"]


def test_the_cache_keeps_the_newest_version_forgets_deletions_and_hands_out_copies():
    from payment_operator.kube.cache import ChildCache

    service = resources.by_kind("v1", "Service")
    cache = ChildCache()
    new = _child("Service", "x", spec={"type": "NodePort"})
    new["metadata"].update(resourceVersion="9", managedFields=[{"manager": "kubectl"}])
    old = _child("Service", "x", spec={"type": "ClusterIP"})  # resourceVersion 7
    cache.observe("MODIFIED", new)
    cache.observe(None, old)  # delivered late (a relist): not newer, ignored
    seen = cache.get(service, "ns", "x")
    assert seen is not None and seen["spec"] == {"type": "NodePort"}
    assert "managedFields" not in seen["metadata"] and new["metadata"]["managedFields"]
    seen["spec"]["type"] = "changed by a pass"
    assert cache.get(service, "ns", "x")["spec"] == {"type": "NodePort"}
    assert cache.get(service, "other-ns", "x") is None
    assert cache.get(resources.by_kind("v1", "ConfigMap"), "ns", "x") is None
    cache.observe("DELETED", new)
    assert cache.get(service, "ns", "x") is None and len(cache) == 0


def _deployment(rv, **status):
    body = _child("Deployment", "x", "apps/v1", owners=[_owner()], spec={"replicas": 2},
                  status=status)
    body["metadata"]["resourceVersion"] = str(rv)
    return body


def test_an_event_triggers_a_pass_only_when_it_changes_what_a_pass_reads():
    from payment_operator.kube.cache import ChildCache

    cache = ChildCache()
    progressing = {"type": "Progressing", "status": "True", "lastUpdateTime": "t1"}
    assert cache.observe("ADDED", _deployment(1, conditions=[progressing]))  # first seen
    # Only a condition's timestamp and the updated/available counts: nothing a pass reads.
    assert not cache.observe("MODIFIED", _deployment(
        2, updatedReplicas=2, conditions=[{**progressing, "lastUpdateTime": "t2"}]))
    assert cache.get(resources.by_kind("apps/v1", "Deployment"), "ns", "x")["metadata"][
        "resourceVersion"] == "2"  # the cache is still up to date
    assert cache.observe("MODIFIED", _deployment(3, updatedReplicas=2, replicas=2))
    assert cache.observe("MODIFIED", _deployment(4, updatedReplicas=2, replicas=2,
                                                 readyReplicas=1))
    spec_changed = _deployment(5, updatedReplicas=2, replicas=2, readyReplicas=1)
    spec_changed["spec"]["replicas"] = 3  # drift: always a pass
    assert cache.observe("MODIFIED", spec_changed)
    relabelled = copy.deepcopy(spec_changed)
    relabelled["metadata"].update(resourceVersion="6", labels={})
    assert cache.observe("MODIFIED", relabelled)
    assert not cache.observe("MODIFIED", _deployment(3))  # older than what is held
    assert cache.observe("DELETED", relabelled)


@pytest.mark.parametrize(("kind", "api_version", "before", "after", "reads"), [
    ("Job", "batch/v1", {"active": 1}, {"active": 1, "ready": 1}, False),
    ("Job", "batch/v1", {"active": 1},
     {"conditions": [{"type": "Complete", "status": "True"}]}, True),
    ("PodDisruptionBudget", "policy/v1", {}, {"currentHealthy": 2, "disruptionsAllowed": 1},
     False),
    # A kind whose status a gate reads: every status change counts.
    ("ExternalSecret", "external-secrets.io/v1", {},
     {"conditions": [{"type": "Ready", "status": "True"}]}, True),
    ("Service", "v1", {}, {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}, True),
])
def test_status_changes_count_only_where_a_pass_reads_them(kind, api_version, before, after,
                                                           reads):
    from payment_operator.kube.cache import ChildCache

    cache = ChildCache()
    first = _child(kind, "x", api_version, owners=[_owner()], status=before)
    cache.observe("ADDED", first)
    second = copy.deepcopy(first)
    second["metadata"]["resourceVersion"] = "8"
    second["status"] = after
    assert cache.observe("MODIFIED", second) is reads


def test_the_event_of_a_pass_own_write_triggers_no_pass():
    from payment_operator.kube.cache import ChildCache

    cache = ChildCache()
    cache.wrote(_deployment(5))  # the write's answer, before its watch event
    assert not cache.observe("ADDED", _deployment(5))
    assert cache.get(resources.by_kind("apps/v1", "Deployment"), "ns", "x") is not None
    assert cache.observe("MODIFIED", _deployment(6, replicas=1))  # news after the write
    # Its event came first: that one triggered, and the write remembers nothing.
    assert cache.observe("MODIFIED", _deployment(7, replicas=2))
    cache.wrote(_deployment(7, replicas=2))
    assert cache.observe("MODIFIED", _deployment(8, replicas=2, readyReplicas=2))


def test_apply_all_remembers_its_writes_for_the_cache():
    from payment_operator.kube.cache import ChildCache

    cache = ChildCache()
    kube = CountingKube()
    result = apply_all(kube, [_desired("Service", "x", spec={"type": "ClusterIP"})], cache)
    created = result.live[("Service", "x")]
    assert not cache.observe("ADDED", created)  # the write's own event


def test_a_get_refreshes_the_cache_and_the_drift_timer_reads_around_it():
    from payment_operator.kube.cache import ChildCache, read

    service = resources.by_kind("v1", "Service")
    ours = _child("Service", "x", owners=[_owner()], spec={"type": "ClusterIP"})
    ours["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "paydeck-operator"
    cache = _cache_of(ours)
    foreign = copy.deepcopy(ours)
    foreign["metadata"].update(labels={}, ownerReferences=[], resourceVersion="9")
    kube = CountingKube(foreign)
    around = cache.reading_around()
    assert read(kube, service, "ns", "x", around)["metadata"]["labels"] == {}  # a GET
    assert kube.gets == ["Service/x"]
    assert cache.get(service, "ns", "x") is None  # the GET saw it is not ours any more
    assert read(kube, service, "ns", "x", cache)["metadata"]["labels"] == {}  # a GET again
    assert isinstance(cache, ChildCache) and len(cache) == 0


def test_an_update_refused_on_a_stale_version_spends_no_budget():
    from payment_operator.kube import apply as apply_module

    ours = _child("Service", "x", owners=[_owner()], spec={"type": "NodePort"})
    newer = copy.deepcopy(ours)
    newer["metadata"]["resourceVersion"] = "8"
    kube = CountingKube(newer)
    budget = UpdateBudget(limit=1, window=300)
    original, apply_module.BUDGET = apply_module.BUDGET, budget
    try:
        result = apply_all(kube, [_desired("Service", "x", spec={"type": "ClusterIP"})],
                           _cache_of(ours))
    finally:
        apply_module.BUDGET = original
    assert result.updated == ["Service/x"]  # 409 on the stale copy, read again, written once


def test_a_status_change_read_after_a_refused_update_still_triggers_a_pass():
    # The pass decided on the cached version 7; the Deployment controller has since marked a
    # pod ready (version 8, whose watch event is still on its way). The update at 7 is
    # refused, the GET finds 8 and the update is written at 8: version 8's event must still
    # trigger a pass, as no pass decided on what it says.
    def labelled(body):
        body["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "paydeck-operator"
        return body

    cached = labelled(_deployment(7, replicas=2, readyReplicas=1))
    ready = labelled(_deployment(8, replicas=2, readyReplicas=2))
    kube = CountingKube(ready)
    desired = _desired("Deployment", "x", "apps/v1", spec={"replicas": 3})
    cache = _cache_of(cached)
    result = apply_all(kube, [desired], cache)
    assert result.updated == ["Deployment/x"] and kube.gets == ["Deployment/x"]
    assert cache.observe("MODIFIED", ready)  # news to every pass
    assert not cache.observe("MODIFIED", result.live[("Deployment", "x")])  # the write's own
