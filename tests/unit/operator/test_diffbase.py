"""Kopf's diff base as a digest: same essence, same digest; any spec change, a new one; a full
essence stored by an older version reads as its digest (an upgrade is no change)."""

import json

import kopf
import pytest
from payment_operator.diffbase import DIGEST, DigestDiffBaseStorage, digest

pytestmark = pytest.mark.unit

FIELD = "status.kopf.last-handled-configuration"


def _body(spec: dict, stored: str | None = None, **status) -> kopf.Body:
    raw = {"apiVersion": "paydeck.dev/v1alpha1", "kind": "PaymentService",
           "metadata": {"name": "pay", "namespace": "ns", "resourceVersion": "7",
                        "labels": {"team": "a"}},
           "spec": spec, "status": dict(status)}
    if stored is not None:
        raw["status"]["kopf"] = {"last-handled-configuration": stored}
    return kopf.Body(raw)


def _stored(storage: DigestDiffBaseStorage, body: kopf.Body) -> str:
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    return patch["status"]["kopf"]["last-handled-configuration"]


def test_the_stored_diff_base_is_a_digest_not_the_spec():
    storage = DigestDiffBaseStorage(field=FIELD)
    body = _body({"image": "registry.example/pay:1", "replicas": 3})
    stored = _stored(storage, body)
    assert "registry.example" not in stored and len(stored) < 100
    assert json.loads(stored) == storage.build(body=body)
    assert storage.fetch(body=_body(body["spec"], stored)) == storage.build(body=body)


def test_status_and_metadata_noise_do_not_change_it_but_spec_and_labels_do():
    storage = DigestDiffBaseStorage(field=FIELD)
    base = storage.build(body=_body({"image": "a", "replicas": 3}))
    assert storage.build(body=_body({"replicas": 3, "image": "a"}, phase="Healthy")) == base
    assert storage.build(body=_body({"image": "b", "replicas": 3})) != base
    relabelled = _body({"image": "a", "replicas": 3})
    relabelled["metadata"]["labels"]["team"] = "b"
    assert storage.build(body=relabelled) != base


def test_a_full_essence_from_an_older_version_reads_as_its_digest():
    spec = {"image": "a", "replicas": 3}
    legacy = kopf.StatusDiffBaseStorage(field=FIELD)
    body = _body(spec)
    patch = kopf.Patch()
    legacy.store(body=body, patch=patch, essence=legacy.build(body=body))
    old = patch["status"]["kopf"]["last-handled-configuration"]

    storage = DigestDiffBaseStorage(field=FIELD)
    assert storage.fetch(body=_body(spec, old)) == storage.build(body=_body(spec, old))
    assert storage.fetch(body=_body(spec, old)) == {DIGEST: digest(json.loads(old))}
    assert storage.fetch(body=_body(spec)) is None  # never handled: a create


def test_the_essence_built_from_the_slim_body_is_kopfs_own():
    # The digest is of exactly the essence Kopf builds from the whole body (so a stored
    # digest or full essence still matches), only without copying status and managedFields.
    body = _body({"image": "a", "replicas": 3}, phase="Healthy")
    body["metadata"].update(
        managedFields=[{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}], uid="u",
        annotations={"team.example/owner": "payments",
                     "kubectl.kubernetes.io/last-applied-configuration": "{}",
                     "other-operator.example/last-handled-configuration": "{}"})
    full = kopf.StatusDiffBaseStorage(field=FIELD).build(body=body)
    assert "kubectl.kubernetes.io/last-applied-configuration" not in full["metadata"][
        "annotations"] and "status" not in full
    assert DigestDiffBaseStorage(field=FIELD).build(body=body) == {DIGEST: digest(full)}
