"""The Helm chart ships byte-for-byte copies of the repository's CRDs.

crds/ is the source (paymentservices.paydeck.dev.yaml is generated from the pydantic models;
kopf-peering.yaml is hand-written). When this fails, refresh the chart's copies with
``cp crds/*.yaml charts/payment-operator/crds/`` (part of ``make manifests``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
SOURCE = ROOT / "crds"
CHART_CRDS = ROOT / "charts" / "payment-operator" / "crds"
FIX = "run: cp crds/*.yaml charts/payment-operator/crds/"


def test_chart_has_the_same_crd_files() -> None:
    source = sorted(p.name for p in SOURCE.glob("*.yaml"))
    assert source, "crds/ holds no CRDs"
    assert sorted(p.name for p in CHART_CRDS.iterdir()) == source, FIX


@pytest.mark.parametrize("name", sorted(p.name for p in SOURCE.glob("*.yaml")))
def test_chart_crd_is_a_byte_copy(name: str) -> None:
    assert (CHART_CRDS / name).read_bytes() == (SOURCE / name).read_bytes(), f"{name}: {FIX}"


def test_peering_crds_are_what_kopf_needs() -> None:
    docs = list(yaml.safe_load_all((SOURCE / "kopf-peering.yaml").read_text()))
    by_name = {d["metadata"]["name"]: d for d in docs}
    assert set(by_name) == {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}
    expected = {
        "clusterkopfpeerings.kopf.dev": ("Cluster", "ClusterKopfPeering"),
        "kopfpeerings.kopf.dev": ("Namespaced", "KopfPeering"),
    }
    for name, (scope, kind) in expected.items():
        spec = by_name[name]["spec"]
        assert (spec["group"], spec["scope"], spec["names"]["kind"]) == ("kopf.dev", scope, kind)
        [version] = spec["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
        # Kopf patches the peers into status through the main resource: no status subresource.
        assert "subresources" not in version
        schema = version["schema"]["openAPIV3Schema"]
        assert schema["type"] == "object"
        assert schema["properties"]["status"]["type"] == "object"
        assert schema["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True
