"""Every child the builders can produce is a kind the kube layer knows how to address."""

import pytest
import yaml
from payment_operator import api, builders
from payment_operator.kube import resources

from tests.fixtures.cluster import ROOT

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
