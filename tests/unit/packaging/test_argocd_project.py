"""The example Argo CD AppProject confines the team's Application: one namespace, one source
repository, PaymentServices only, nothing cluster-scoped. That Argo CD's own CRDs accept both
files is tests/integration/packaging/test_argocd_project.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.unit.packaging import lua

pytestmark = pytest.mark.unit


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((lua.ARGOCD / name).read_text()) if d]


def project() -> dict[str, Any]:
    [proj] = docs("appproject.yaml")
    assert (proj["apiVersion"], proj["kind"]) == ("argoproj.io/v1alpha1", "AppProject")
    return proj


def team_application() -> dict[str, Any]:
    return {d["metadata"]["name"]: d for d in docs("application.yaml")}["payments"]


def test_team_application_uses_the_project() -> None:
    app, proj = team_application(), project()
    assert app["spec"]["project"] == proj["metadata"]["name"] != "default"
    assert app["metadata"]["namespace"] == proj["metadata"]["namespace"] == "argocd"


def test_project_destination_is_the_team_namespace_only() -> None:
    app, proj = team_application(), project()
    assert proj["spec"]["destinations"] == [app["spec"]["destination"]]
    [dest] = proj["spec"]["destinations"]
    assert "*" not in dest["namespace"] + dest["server"]
    assert proj["spec"]["sourceRepos"] == [app["spec"]["source"]["repoURL"]]


def test_project_allows_paymentservices_and_no_cluster_resources() -> None:
    spec = project()["spec"]
    assert spec["namespaceResourceWhitelist"] == [{"group": "paydeck.dev",
                                                   "kind": "PaymentService"}]
    # Argo CD allows no cluster-scoped kind when the whitelist is empty.
    assert spec.get("clusterResourceWhitelist") in (None, [])
    assert "namespaceResourceBlacklist" not in spec and "roles" not in spec


def test_team_application_asks_for_nothing_the_project_forbids() -> None:
    sync = team_application()["spec"]["syncPolicy"]
    assert "CreateNamespace=true" not in sync.get("syncOptions", [])
    assert "managedNamespaceMetadata" not in sync
