"""Drift detection decides when a child needs a write; a wrong answer means writes or drift."""

import copy

import pytest
from payment_operator.kube import drift

pytestmark = pytest.mark.unit


def _deploy(replicas=2, cpu="250m"):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "x", "namespace": "ns", "labels": {"a": "b"}},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [
            {"name": "c", "resources": {"requests": {"cpu": cpu}}}]}}},
    }


def _live(desired, **extra_spec):
    live = copy.deepcopy(drift.with_hash(desired))
    live = {**live, "metadata": {**live["metadata"], "uid": "u", "resourceVersion": "7",
                                 "labels": {**live["metadata"]["labels"], "extra": "1"}},
            "status": {"replicas": 2}}
    live["spec"] = {**live["spec"], "progressDeadlineSeconds": 600, **extra_spec}
    return live


def test_server_defaults_and_extra_labels_are_not_drift():
    desired = _deploy()
    assert not drift.needs_apply(_live(desired), drift.with_hash(desired))


def test_changed_field_is_drift():
    desired = _deploy()
    live = _live(desired)
    live["spec"]["replicas"] = 7
    assert drift.needs_apply(live, drift.with_hash(desired))


def test_missing_object_and_deleting_object_need_apply():
    desired = drift.with_hash(_deploy())
    assert drift.needs_apply(None, desired)
    live = _live(_deploy())
    live["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert drift.needs_apply(live, desired)


def test_changed_desired_manifest_changes_the_hash():
    old, new = _deploy(), _deploy(replicas=3)
    assert drift.manifest_hash(old) != drift.manifest_hash(new)
    assert drift.needs_apply(_live(old), drift.with_hash(new))


def test_a_revisions_template_is_named_by_its_label_not_hashed_again():
    built = _deploy()
    built["metadata"]["labels"]["paydeck.dev/revision"] = "abc"
    # The same revision built again from its live template, the server's defaults in it.
    from_live = copy.deepcopy(built)
    from_live["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/x"
    assert drift.manifest_hash(from_live) == drift.manifest_hash(built)
    live = _live(from_live)  # as the server holds it
    assert not drift.needs_apply(live, drift.with_hash(from_live))
    assert not drift.needs_apply(live, drift.with_hash(built))  # a rollback to it, say
    # Everything else of it is hashed; a Deployment without the label is hashed whole.
    assert drift.manifest_hash(_with(built, replicas=3)) != drift.manifest_hash(built)
    del from_live["metadata"]["labels"]["paydeck.dev/revision"]
    del built["metadata"]["labels"]["paydeck.dev/revision"]
    assert drift.manifest_hash(from_live) != drift.manifest_hash(built)


def _with(manifest, **spec):
    return {**manifest, "spec": {**manifest["spec"], **spec}}


def test_only_replicas_tells_a_rescale_from_any_other_update():
    live = _live(_deploy(replicas=2))
    assert drift.only_replicas(live, drift.with_hash(_deploy(replicas=3)))
    # Another field too, or not the replicas at all: an update like any other.
    assert not drift.only_replicas(live, drift.with_hash(_deploy(replicas=3, cpu="500m")))
    assert not drift.only_replicas(live, drift.with_hash(_deploy(replicas=2, cpu="500m")))
    # The same manifest written back over a drifted field is no rescale either.
    drifted = copy.deepcopy(live)
    drifted["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1"
    assert not drift.only_replicas(drifted, drift.with_hash(_deploy(replicas=3)))
    assert not drift.only_replicas(None, drift.with_hash(_deploy(replicas=3)))
    # A manifest without replicas (the autoscaler's) never is one.
    no_replicas = _deploy()
    del no_replicas["spec"]["replicas"]
    assert not drift.only_replicas(live, drift.with_hash(no_replicas))


def test_quantities_compare_by_value():
    desired = _deploy(cpu="0.5")
    live = _live(desired)
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "500m"
    assert not drift.needs_apply(live, drift.with_hash(desired))
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "400m"
    assert drift.needs_apply(live, drift.with_hash(desired))


def test_lists_must_match_in_length():
    assert not drift.contains({"a": [1, 2]}, {"a": [1]})
    assert drift.contains({"a": [{"x": 1, "y": 2}]}, {"a": [{"x": 1}]})


def test_bools_are_not_numbers():
    assert not drift.contains(1, True)
    assert drift.contains(2, 2.0)


def test_named_lists_match_by_name_and_tolerate_foreign_items():
    desired = {"containers": [{"name": "app", "image": "a:1"}]}
    injected = {"containers": [{"name": "istio-proxy", "image": "proxy"},
                               {"name": "app", "image": "a:1", "imagePullPolicy": "IfNotPresent"}]}
    assert drift.contains(injected, desired)
    assert not drift.contains({"containers": [{"name": "app", "image": "a:2"}]}, desired)
    assert not drift.contains({"containers": [{"name": "other", "image": "a:1"}]}, desired)


def test_list_repairs_reset_only_drifted_lists():
    live = {"spec": {"ports": [{"name": "http", "port": 81}], "selector": {"a": "b"},
                     "extra": [1, 2]}}
    desired = {"spec": {"ports": [{"name": "http", "port": 80}], "selector": {"a": "b"}}}
    assert drift.list_repairs(live, desired) == [
        {"op": "replace", "path": "/spec/ports", "value": [{"name": "http", "port": 80}]}]
    assert drift.list_repairs(desired, desired) == []
