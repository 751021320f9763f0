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
