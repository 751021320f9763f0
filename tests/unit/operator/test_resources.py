"""Every child the builders can produce is a kind the kube layer knows how to address;
discovery asks for the group/versions of the optional kinds in KNOWN."""

import dataclasses

import pytest
import yaml
from payment_operator import api, builders
from payment_operator.builders import kafka
from payment_operator.kube import resources
from payment_operator.kube.discovery import CapabilityCache, capabilities

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


def test_each_capability_is_the_group_versions_of_known():
    flags = {f.name for f in dataclasses.fields(builders.Capabilities)
             if f.type in (bool, "bool")}
    assert set(resources.OPTIONAL_APIS) == flags
    for r in resources.KNOWN:
        if r.capability is not None:
            assert r.api_version in resources.OPTIONAL_APIS[r.capability], r


def test_optional_apis_are_the_versions_the_current_upstreams_serve():
    # External Secrets v1.3 serves only v1, Strimzi 1.2 only v1 (tests/e2e checks the real
    # CRDs of all but Strimzi accept what the builders emit).
    assert dict(resources.OPTIONAL_APIS) == {
        "prometheus_operator": ("monitoring.coreos.com/v1",),
        "external_secrets": ("external-secrets.io/v1",),
        "secrets_store_csi": ("secrets-store.csi.x-k8s.io/v1",),
        # Strimzi 1.x serves v1 only; older releases v1beta2 (the same topic spec).
        "strimzi": ("kafka.strimzi.io/v1", "kafka.strimzi.io/v1beta2"),
    }


def test_discovery_asks_for_the_optional_apis_and_nothing_else():
    kube = FakeKube()
    kube.apis = {"external-secrets.io/v1beta1", "monitoring.coreos.com/v1"}
    caps = CapabilityCache(ttl=60).get(kube)
    assert caps == builders.Capabilities(prometheus_operator=True)
    assert sorted(api for verb, api, _ in kube.calls if verb == "discover") == sorted(
        api for apis in resources.OPTIONAL_APIS.values() for api in apis)
    kube.apis |= {"external-secrets.io/v1", "kafka.strimzi.io/v1"}
    assert CapabilityCache(ttl=60).get(kube) == builders.Capabilities(
        prometheus_operator=True, external_secrets=True, strimzi=True)


@pytest.mark.parametrize(("served", "strimzi", "version"), [
    (set(), False, "v1"),
    ({"kafka.strimzi.io/v1"}, True, "v1"),
    ({"kafka.strimzi.io/v1beta2"}, True, "v1beta2"),
    ({"kafka.strimzi.io/v1beta2", "kafka.strimzi.io/v1"}, True, "v1"),  # v1 first
    ({"kafka.strimzi.io/v1beta1"}, False, "v1"),  # a spec we do not build
])
def test_strimzi_discovery_prefers_v1_then_v1beta2(served, strimzi, version):
    asked: list[str] = []

    def serves(api: str) -> bool:
        asked.append(api)
        return api in served

    caps = capabilities(serves)
    assert (caps.strimzi, caps.strimzi_version) == (strimzi, version)
    strimzi_asked = [a for a in asked if a.startswith("kafka.strimzi.io/")]
    # Once v1 answers, v1beta2 is not asked.
    assert strimzi_asked == (["kafka.strimzi.io/v1"] if "kafka.strimzi.io/v1" in served
                             else ["kafka.strimzi.io/v1", "kafka.strimzi.io/v1beta2"])


@pytest.mark.parametrize("version", kafka.VERSIONS)
def test_topics_are_built_pruned_and_watched_at_the_served_version(version):
    caps = dataclasses.replace(ALL_APIS, strimzi_version=version)
    body = yaml.safe_load((ROOT / "manifests" / "samples" / "full.yaml").read_text())
    body["metadata"].update(namespace="ns", uid="uid-1", generation=1)
    body["spec"]["kafka"]["strimzi"].pop("namespace", None)
    topics = [m for m in builders.build_all(api.parse(body), builders.Context(capabilities=caps))
              if m["kind"] == "KafkaTopic"]
    assert topics and {m["apiVersion"] for m in topics} == {f"kafka.strimzi.io/{version}"}
    kinds = [r for r in resources.children(caps) if r.kind == "KafkaTopic"]
    assert [r.api_version for r in kinds] == [f"kafka.strimzi.io/{version}"]
    assert {r.api_version for r in resources.CHILDREN if r.kind == "KafkaTopic"} == set(
        kafka.API_VERSIONS)
