"""The install bundle and the operator's RBAC contract, shared by unit and integration tests.

``EXPECTED_RULES`` is the operator's permission contract written out once: exactly what the
ClusterRole of manifests/install/ and of the Helm chart must grant, nothing more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
INSTALL = ROOT / "manifests" / "install"
CHART = ROOT / "charts" / "payment-operator"
CRDS = ROOT / "crds"

NAMESPACE = "paydeck-system"
SERVICE_ACCOUNT = "paydeck-operator"

CHILD_VERBS = ("get", "list", "watch", "create", "patch", "delete")
CHILDREN = {
    "": ("serviceaccounts", "configmaps", "services"),
    "apps": ("deployments",),
    "batch": ("jobs",),  # the migration Job of each revision
    "autoscaling": ("horizontalpodautoscalers",),
    "policy": ("poddisruptionbudgets",),
    "networking.k8s.io": ("networkpolicies", "ingresses"),
    "monitoring.coreos.com": ("servicemonitors", "prometheusrules"),
    "external-secrets.io": ("externalsecrets", "secretstores"),
    "secrets-store.csi.x-k8s.io": ("secretproviderclasses",),
    "kafka.strimzi.io": ("kafkatopics",),
}

Permission = tuple[str, str, str]  # (apiGroup, resource, verb)


def _expand(group: str, resources: tuple[str, ...], verbs: tuple[str, ...]) -> set[Permission]:
    return {(group, r, v) for r in resources for v in verbs}


EXPECTED_RULES: set[Permission] = (
    _expand("paydeck.dev", ("paymentservices",), ("get", "list", "watch", "patch"))
    | _expand("paydeck.dev", ("paymentservices/status",), ("get", "patch"))
    | set().union(*(_expand(g, rs, CHILD_VERBS) for g, rs in CHILDREN.items()))
    | _expand("", ("events",), ("create", "patch"))
    | _expand("events.k8s.io", ("events",), ("create", "patch"))
    | _expand("kopf.dev", ("clusterkopfpeerings", "kopfpeerings"),
              ("get", "list", "watch", "patch"))
    | _expand("apiextensions.k8s.io", ("customresourcedefinitions",), ("get", "list", "watch"))
    | _expand("", ("namespaces",), ("list", "watch"))
    | _expand("", ("pods",), ("get", "list"))
)


def permissions(cluster_role: dict[str, Any]) -> set[Permission]:
    """Every (group, resource, verb) a ClusterRole grants, flattened."""
    granted: set[Permission] = set()
    for rule in cluster_role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    granted.add((group, resource, verb))
    return granted


def bundle_files() -> list[Path]:
    return sorted(INSTALL.glob("*.yaml"))


def load(paths: list[Path] | Path) -> list[dict[str, Any]]:
    paths = [paths] if isinstance(paths, Path) else paths
    return [d for p in paths for d in yaml.safe_load_all(p.read_text()) if d]


def bundle() -> list[dict[str, Any]]:
    return load(bundle_files())


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [d for d in docs if d["kind"] == kind]
    return found
