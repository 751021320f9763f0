"""Every child the builders can produce is a kind the kube layer knows how to address;
discovery asks for the group/versions of the optional kinds in KNOWN."""

import dataclasses

import pytest
import yaml
from payment_operator import api, builders
from payment_operator.kube import resources
from payment_operator.kube.discovery import CapabilityCache

from tests.fixtures.cluster import ROOT
from tests.unit.operator.fake_kube import FakeKube

pytestmark = pytest.mark.unit

ALL_APIS = builders.Capabilities(prometheus_operator=True, external_secrets=True,
                                 secrets_store_csi=True, strimzi=True)


@pytest.mark.parametrize("sample", ["minimal", "full", "aws"])
def test_every_built_kind_is_known(sample):
    body = yaml.safe_load((ROOT / "manifests" / "samples" / f"{sample}.yaml").read_text())
    body["metadata"].update(namespace="ns", uid="uid-1", generation=1)
    ps = api.parse(body)
    for manifest in builders.build_all(ps, builders.Context(capabilities=ALL_APIS)):
        resource = resources.of(manifest)
        assert resource.namespaced
        assert resource.path("ns", "x").endswith(f"/namespaces/ns/{resource.plural}/x")


def test_each_capability_is_one_group_version_of_known():
    flags = {f.name for f in dataclasses.fields(builders.Capabilities)}
    assert set(resources.OPTIONAL_APIS) == flags
    for r in resources.KNOWN:
        if r.capability is not None:
            assert resources.OPTIONAL_APIS[r.capability] == r.api_version, r


def test_optional_apis_are_the_versions_the_current_upstreams_serve():
    # External Secrets v1.3 serves only v1, Strimzi 1.2 only v1 (tests/e2e checks the real
    # CRDs of all but Strimzi accept what the builders emit).
    assert dict(resources.OPTIONAL_APIS) == {
        "prometheus_operator": "monitoring.coreos.com/v1",
        "external_secrets": "external-secrets.io/v1",
        "secrets_store_csi": "secrets-store.csi.x-k8s.io/v1",
        "strimzi": "kafka.strimzi.io/v1",
    }


def test_discovery_asks_for_the_optional_apis_and_nothing_else():
    kube = FakeKube()
    kube.apis = {"external-secrets.io/v1beta1", "kafka.strimzi.io/v1beta2",
                 "monitoring.coreos.com/v1"}
    caps = CapabilityCache(ttl=60).get(kube)
    assert caps == builders.Capabilities(prometheus_operator=True)
    assert sorted(api for verb, api, _ in kube.calls if verb == "discover") == sorted(
        resources.OPTIONAL_APIS.values())
    kube.apis |= {"external-secrets.io/v1", "kafka.strimzi.io/v1"}
    assert CapabilityCache(ttl=60).get(kube) == builders.Capabilities(
        prometheus_operator=True, external_secrets=True, strimzi=True)
