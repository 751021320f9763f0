"""The example Argo CD AppProject and Applications against Argo CD's real CRDs.

The AppProject and Application CRDs of Argo CD v3.2.0 (from its Go module, cached by
hack/crds.py, never committed) are installed on the real API server; manifests/argocd/
appproject.yaml and application.yaml must be created with strict field validation (a field
the CRD does not know fails), and a control shows an unknown field really is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hack import crds
from hack.cluster import wait_established
from tests.fixtures.cluster import KubeCluster
from tests.unit.packaging import lua

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def argocd_crds(cluster: KubeCluster) -> list[Path]:
    files = crds.paths(["argo-cd"])
    # Server-side: the Application CRD is too big for client-side apply's annotation.
    cluster.kubectl("apply", "--server-side", "--field-manager=tests",
                    *(arg for f in files for arg in ("-f", str(f))))
    wait_established(cluster.kubectl, crds.names_in(files))
    return files


def create_strict(cluster: KubeCluster, doc: dict[str, Any], namespace: str,
                  ) -> tuple[int, str]:
    doc = {**doc, "metadata": {**doc["metadata"], "namespace": namespace}}
    result = cluster.kubectl("create", "--validate=strict", "-f", "-",
                             input=yaml.safe_dump(doc), check=False)
    return result.returncode, result.stderr


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((lua.ARGOCD / name).read_text()) if d]


def test_crds_are_argo_cds(argocd_crds: list[Path]) -> None:
    assert sorted(crds.names_in(argocd_crds)) == ["applications.argoproj.io",
                                                  "appprojects.argoproj.io"]


def test_appproject_is_accepted_strictly(cluster: KubeCluster, argocd_crds: list[Path],
                                         namespace: str) -> None:
    [proj] = docs("appproject.yaml")
    code, err = create_strict(cluster, proj, namespace)
    assert code == 0, err
    stored = yaml.safe_load(cluster.kubectl(
        "get", "appproject", proj["metadata"]["name"], "-n", namespace, "-o", "yaml").stdout)
    assert stored["spec"]["namespaceResourceWhitelist"] == [
        {"group": "paydeck.dev", "kind": "PaymentService"}]
    # Control: strict validation refuses a field the CRD does not know (a misspelt whitelist).
    typo = {**proj, "metadata": {"name": "typo"},
            "spec": {**proj["spec"], "namespaceResourceWhiteList": [{"group": "", "kind": "*"}]}}
    code, err = create_strict(cluster, typo, namespace)
    assert code != 0 and "namespaceResourceWhiteList" in err, err


def test_applications_are_accepted_strictly(cluster: KubeCluster, argocd_crds: list[Path],
                                            namespace: str) -> None:
    for app in docs("application.yaml"):
        code, err = create_strict(cluster, app, namespace)
        assert code == 0, (app["metadata"]["name"], err)
