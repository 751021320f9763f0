"""The install bundle and the Helm chart as objects, shared by unit, integration and e2e tests.

There is no hand-written copy of the operator's RBAC here: what it needs is proved by running
the operator with exactly the chart's rules (tests/e2e/test_rbac.py).  This module only reads
the shipped files and renders the chart.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from hack import tools

ROOT = Path(__file__).resolve().parents[3]
INSTALL = ROOT / "manifests" / "install"
CHART = ROOT / "charts" / "payment-operator"
CRDS = ROOT / "crds"

NAMESPACE = "paydeck-system"
SERVICE_ACCOUNT = "paydeck-operator"

KUBE_VERSION = tools.KUBERNETES_VERSION.removeprefix("v")

Permission = tuple[str, str, str, tuple[str, ...]]  # (apiGroup, resource, verb, resourceNames)


def permissions(role: dict[str, Any]) -> set[Permission]:
    """Every (group, resource, verb, resourceNames) a (Cluster)Role grants, flattened."""
    granted: set[Permission] = set()
    for rule in role.get("rules") or []:
        assert "nonResourceURLs" not in rule, rule
        names = tuple(sorted(rule.get("resourceNames") or ()))
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    granted.add((group, resource, verb, names))
    return granted


def bundle_files() -> list[Path]:
    return sorted(INSTALL.glob("*.yaml"))


def load(paths: list[Path] | Path) -> list[dict[str, Any]]:
    paths = [paths] if isinstance(paths, Path) else paths
    return [d for p in paths for d in yaml.safe_load_all(p.read_text()) if d]


def bundle() -> list[dict[str, Any]]:
    return load(bundle_files())


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    [found] = [d for d in docs if d["kind"] == kind
               and (name is None or d["metadata"]["name"] == name)]
    return found


def render(values: dict[str, Any] | None = None, *, namespace: str = NAMESPACE,
           release: str = "paydeck", check: bool = True) -> subprocess.CompletedProcess[str]:
    """``helm template`` of the chart with these values (a values file, so keys may hold dots)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump(values or {}, file)
        file.flush()
        result = subprocess.run(
            [str(tools.binary("helm")), "template", release, str(CHART), "--namespace",
             namespace, "--kube-version", KUBE_VERSION, "--values", file.name],
            text=True, capture_output=True, check=False, timeout=120,
        )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def rendered(values: dict[str, Any] | None = None, *, namespace: str = NAMESPACE,
             release: str = "paydeck") -> list[dict[str, Any]]:
    """The chart's objects for these values."""
    text = render(values, namespace=namespace, release=release).stdout
    return [d for d in yaml.safe_load_all(text) if d]
