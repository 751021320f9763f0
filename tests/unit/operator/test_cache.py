"""The children cache: the watched base (Kopf's index, stood in for by a dict here) and the
operator's own writes and deletes on top of it, decided by resourceVersion."""

import threading

import pytest
from payment_operator.kube import cache as child_cache
from payment_operator.kube.cache import ChildCache, Deleted, Written, resolve
from payment_operator.kube.resources import by_kind

pytestmark = pytest.mark.unit

DEPLOYMENT = by_kind("apps/v1", "Deployment")
CONFIG_MAP = by_kind("v1", "ConfigMap")
INSTANCE = "app.kubernetes.io/instance"


def obj(name, rv, uid="u1", kind="Deployment", namespace="ns", instance="pay", **extra):
    labels = {INSTANCE: instance, "app.kubernetes.io/name": "payment-service",
              "app.kubernetes.io/managed-by": "paydeck-operator"}
    labels.update(extra.pop("labels", {}))
    return {"apiVersion": "apps/v1" if kind == "Deployment" else "v1", "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "uid": uid,
                         "resourceVersion": str(rv), "labels": labels, **extra}}


class Base(dict):
    """What Kopf's index offers: key -> the objects stored under it."""

    def put(self, o):
        self.drop(o)
        for key, value in child_cache.index_entries(o, o["apiVersion"], o["kind"]).items():
            self.setdefault(key, []).append(value)

    def drop(self, o):
        uid = o["metadata"]["uid"]
        for key in list(self):
            self[key] = [v for v in self[key]
                         if child_cache.unpack(v)["metadata"]["uid"] != uid]
            if not self[key]:
                del self[key]


@pytest.fixture
def base():
    return Base()


@pytest.fixture
def cache(base):
    c = ChildCache()
    c.attach({DEPLOYMENT: base, CONFIG_MAP: Base()})
    c.trust([DEPLOYMENT, CONFIG_MAP])
    return c


# ---- resolve: the pure decision ---------------------------------------------------------


def test_the_newer_resource_version_wins_and_the_mark_goes_once_the_watch_caught_up():
    watched, ours = obj("a", 10), obj("a", 12)
    assert resolve(watched, Written(ours)) == (ours, True)
    assert resolve(obj("a", 12), Written(ours)) == (obj("a", 12), False)
    assert resolve(obj("a", 13), Written(ours)) == (obj("a", 13), False)
    assert resolve(None, Written(ours)) == (ours, True)  # the watch has not shown our create
    assert resolve(watched, None) == (watched, False)


@pytest.mark.parametrize("version", ["x9", "012", "0", "", "1e3", "١٢"])
def test_a_version_that_is_not_comparable_lets_the_watch_win(version):
    assert resolve(obj("a", version), Written(obj("a", 12))) == (obj("a", version), False)
    assert resolve(obj("a", 12), Written(obj("a", version))) == (obj("a", 12), False)


def test_a_deleted_object_stays_hidden_until_the_watch_drops_it_or_a_new_one_appears():
    assert resolve(obj("a", 10, uid="u1"), Deleted("u1")) == (None, True)
    assert resolve(None, Deleted("u1")) == (None, False)
    new = obj("a", 20, uid="u2")
    assert resolve(new, Deleted("u1")) == (new, False)


# ---- the store --------------------------------------------------------------------------


def test_reads_come_from_the_base_without_managed_fields(base, cache):
    base.put(obj("pay-1", 5, managedFields=[{"manager": "x"}]))
    got = cache.get(DEPLOYMENT, "ns", "pay-1")
    assert got["metadata"]["resourceVersion"] == "5"
    assert "managedFields" not in got["metadata"]
    assert cache.get(DEPLOYMENT, "ns", "other") is None
    assert cache.get(DEPLOYMENT, "elsewhere", "pay-1") is None


def test_a_copy_is_handed_out(base, cache):
    base.put(obj("pay-1", 5))
    cache.get(DEPLOYMENT, "ns", "pay-1")["metadata"]["labels"].clear()
    assert cache.get(DEPLOYMENT, "ns", "pay-1")["metadata"]["labels"]
    cache.list(DEPLOYMENT, "ns", f"{INSTANCE}=pay")[0]["metadata"].clear()
    assert cache.list(DEPLOYMENT, "ns", f"{INSTANCE}=pay")[0]["metadata"]
    written = obj("pay-2", 9, uid="u2")
    cache.wrote(written)
    written["metadata"]["labels"].clear()  # the caller's own object, changed afterwards
    cache.get(DEPLOYMENT, "ns", "pay-2")["metadata"]["labels"].clear()
    cache.list(DEPLOYMENT, "ns", f"{INSTANCE}=pay")[1]["metadata"].clear()
    assert cache.get(DEPLOYMENT, "ns", "pay-2")["metadata"]["labels"][INSTANCE] == "pay"


def test_our_write_is_read_until_the_watch_shows_it_then_the_watch_again(base, cache):
    base.put(obj("pay-1", 5))
    cache.wrote(obj("pay-1", 9, replicas="ours"))
    assert cache.get(DEPLOYMENT, "ns", "pay-1")["metadata"]["resourceVersion"] == "9"
    assert len(cache) == 1
    base.put(obj("pay-1", 9))  # the watch delivers our write
    cache.seen(obj("pay-1", 9))
    assert len(cache) == 0
    base.put(obj("pay-1", 11))  # and then someone else's
    assert cache.get(DEPLOYMENT, "ns", "pay-1")["metadata"]["resourceVersion"] == "11"


def test_a_stale_watch_event_after_our_write_does_not_drop_the_write(base, cache):
    cache.wrote(obj("pay-1", 9))
    base.put(obj("pay-1", 7))
    cache.seen(obj("pay-1", 7))
    assert cache.get(DEPLOYMENT, "ns", "pay-1")["metadata"]["resourceVersion"] == "9"


def test_a_created_object_is_listed_before_the_watch_shows_it(base, cache):
    base.put(obj("pay-1", 5))
    cache.wrote(obj("pay-2", 9, uid="u2"))
    names = [o["metadata"]["name"] for o in cache.list(DEPLOYMENT, "ns", f"{INSTANCE}=pay")]
    assert names == ["pay-1", "pay-2"]


def test_a_pruned_object_is_absent_at_once_and_its_mark_goes_with_the_deletion(base, cache):
    base.put(obj("pay-1", 5))
    cache.deleted(DEPLOYMENT, "ns", "pay-1", "u1")
    assert cache.get(DEPLOYMENT, "ns", "pay-1") is None
    assert cache.list(DEPLOYMENT, "ns", f"{INSTANCE}=pay") == []
    base.drop(obj("pay-1", 5))
    cache.gone(obj("pay-1", 6))
    assert len(cache) == 0
    base.put(obj("pay-1", 8, uid="u3"))  # created again (by us or anyone): visible
    assert cache.get(DEPLOYMENT, "ns", "pay-1")["metadata"]["uid"] == "u3"


def test_an_object_deleted_behind_our_back_after_our_write_is_absent(base, cache):
    cache.wrote(obj("pay-1", 9))
    # The watch's deletion of that very object drops our mark (no read came in between).
    cache.gone(obj("pay-1", 10))
    assert cache.get(DEPLOYMENT, "ns", "pay-1") is None


def test_the_deletion_of_an_older_object_does_not_drop_our_write_of_a_new_one(base, cache):
    cache.wrote(obj("pay-1", 9, uid="new"))
    cache.gone(obj("pay-1", 8, uid="old"))
    assert cache.get(DEPLOYMENT, "ns", "pay-1")["metadata"]["uid"] == "new"


def test_lists_select_by_namespace_and_labels(base, cache):
    base.put(obj("pay-1", 5, labels={"paydeck.dev/revision": "r1"}))
    base.put(obj("pay-2", 6, uid="u2", labels={"paydeck.dev/revision": "r2"}))
    base.put(obj("other-1", 7, uid="u3", instance="other"))
    base.put(obj("pay-1", 8, uid="u4", namespace="ns2"))
    found = cache.list(DEPLOYMENT, "ns",
                       f"app.kubernetes.io/name=payment-service,{INSTANCE}=pay")
    assert [o["metadata"]["name"] for o in found] == ["pay-1", "pay-2"]
    found = cache.list(DEPLOYMENT, "ns", "paydeck.dev/revision=r2")  # no narrow key: a scan
    assert [o["metadata"]["uid"] for o in found] == ["u2"]
    assert [o["metadata"]["namespace"] for o in cache.list(DEPLOYMENT, None, f"{INSTANCE}=pay")
            ] == ["ns", "ns", "ns2"]


def test_label_owned_children_are_found_by_owner_uid_in_every_namespace(base, cache):
    owned = {"paydeck.dev/owner-uid": "ps-uid"}
    base.put(obj("t1", 5, namespace="kafka", labels=owned))
    base.put(obj("t2", 6, uid="u2", namespace="other", labels=owned))
    base.put(obj("t3", 7, uid="u3", namespace="kafka"))
    found = cache.list(DEPLOYMENT, None, "paydeck.dev/owner-uid=ps-uid")
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in found] == [
        ("kafka", "t1"), ("other", "t2")]


def test_only_attached_and_trusted_resources_are_cached(base):
    c = ChildCache()
    assert not c.caches(DEPLOYMENT) and not c.trusted
    c.trust([DEPLOYMENT])  # no base: nothing to trust
    assert not c.trusted
    c.attach({DEPLOYMENT: base})
    assert not c.caches(DEPLOYMENT)  # not listed yet
    c.trust([DEPLOYMENT, CONFIG_MAP])
    assert c.caches(DEPLOYMENT) and not c.caches(CONFIG_MAP)


def test_unsupported_selectors_are_refused():
    with pytest.raises(ValueError):
        child_cache.parse_selector("a!=b")
    with pytest.raises(ValueError):
        child_cache.parse_selector("a in (b)")
    assert child_cache.parse_selector("a=b, c==d") == {"a": "b", "c": "d"}


def test_listed_objects_get_their_kind_and_one_copy_under_every_key():
    listed = obj("t1", 5, labels={"paydeck.dev/owner-uid": "ps"})
    del listed["kind"], listed["apiVersion"]
    listed["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    entries = child_cache.index_entries(listed, "v1", "ConfigMap")
    assert set(entries) == {("name", "ns", "t1"), ("instance", "ns", "pay"),
                            ("owner-uid", "ps")}
    first, *rest = entries.values()
    assert all(v is first for v in rest)  # one string, stored under three keys
    stored = child_cache.unpack(first)
    assert stored["kind"] == "ConfigMap" and stored["apiVersion"] == "v1"
    assert "managedFields" not in stored["metadata"]
    assert listed["metadata"]["managedFields"]  # the watched body is left as it was


def test_concurrent_writes_and_reads_keep_the_store_consistent(base, cache):
    def writer(i):
        for n in range(200):
            cache.wrote(obj(f"pay-{i}", 100 + n, uid=f"u{i}"))
            cache.list(DEPLOYMENT, "ns", f"{INSTANCE}=pay")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [o["metadata"]["resourceVersion"]
            for o in cache.list(DEPLOYMENT, "ns", f"{INSTANCE}=pay")] == ["299"] * 4
