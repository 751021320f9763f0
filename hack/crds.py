"""Upstream CRDs, from the Go module proxy, cached once per version.

The optional APIs' (``OPTIONAL_APIS``: the Prometheus Operator, External Secrets and the Secrets
Store CSI driver) and Argo CD's AppProject and Application (to validate manifests/argocd/) ship
inside their Go modules, so ``go mod download`` fetches exactly the release's files; each
set lands in ``~/.cache/paydeck/crds-<name>-<version>/`` and is never fetched again while it
is there.  Strimzi's CRDs are generated from Java classes (no registry here carries the
YAML), so its KafkaTopic stays a stand-in (``STRIMZI_STANDIN``).  Usage::

    python -m hack.crds fetch      # what `python -m hack.tools build` does too
    python -m hack.crds paths      # the cached files, one a line (fetching what is missing)
"""

from __future__ import annotations

import argparse
import fcntl
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from hack import tools


@dataclass(frozen=True)
class CrdSet:
    """CRD files of one upstream release, at their paths inside its Go module."""

    name: str
    module: str
    version: str
    files: tuple[str, ...]

    @property
    def home(self) -> Path:
        return tools.CACHE / f"crds-{self.name}-{self.version}"

    def paths(self) -> list[Path]:
        return [self.home / Path(f).name for f in self.files]

    def fetched(self) -> bool:
        return all(p.is_file() for p in self.paths())


_ESO = "config/crds/bases/external-secrets.io_"
_PROMETHEUS = "example/prometheus-operator-crd/monitoring.coreos.com_"

SETS: dict[str, CrdSet] = {
    s.name: s
    for s in (
        # Serves external-secrets.io/v1 only (v1beta1 is in the CRD, not served).
        CrdSet("external-secrets", "github.com/external-secrets/external-secrets", "v1.3.2",
               tuple(f"{_ESO}{p}.yaml"
                     for p in ("secretstores", "externalsecrets", "clustersecretstores"))),
        CrdSet("secrets-store-csi-driver", "sigs.k8s.io/secrets-store-csi-driver", "v1.6.0",
               ("config/crd/bases/secrets-store.csi.x-k8s.io_secretproviderclasses.yaml",)),
        CrdSet("prometheus-operator", "github.com/prometheus-operator/prometheus-operator",
               "v0.88.0",
               tuple(f"{_PROMETHEUS}{p}.yaml" for p in ("servicemonitors", "prometheusrules"))),
        # Not an API the operator uses: the example Argo CD AppProject and Applications are
        # checked against it (tests/integration/packaging/test_argocd_project.py).
        CrdSet("argo-cd", "github.com/argoproj/argo-cd/v3", "v3.2.0",
               ("manifests/crds/appproject-crd.yaml", "manifests/crds/application-crd.yaml")),
    )
}

#: The sets whose kinds the operator may create (installed by the e2e optional-API tests).
OPTIONAL_APIS = ["external-secrets", "secrets-store-csi-driver", "prometheus-operator"]

#: KafkaTopic at kafka.strimzi.io/v1 (what Strimzi 1.2 serves), accepting any spec.
STRIMZI_STANDIN = (Path(__file__).resolve().parents[1] / "tests" / "data" / "crds"
                   / "strimzi-kafkatopic-standin.yaml")


def _fetch(crds: CrdSet) -> None:
    src = tools._module_dir(crds.module, crds.version, Path(tempfile.gettempdir()))
    tools.CACHE.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".crds-{crds.name}-", dir=tools.CACHE))
    try:
        for rel, out in zip(crds.files, crds.paths(), strict=True):
            text = (src / rel).read_text()
            kinds = {d.get("kind") for d in yaml.safe_load_all(text) if d}
            if kinds != {"CustomResourceDefinition"}:
                raise ValueError(f"{crds.module}@{crds.version}/{rel} holds {kinds}, not CRDs")
            (staged / out.name).write_text(text)  # the module cache's files are read-only
        if crds.home.exists():
            shutil.rmtree(crds.home)
        staged.rename(crds.home)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def ensure(names: list[str] | None = None) -> None:
    """Fetch each named set (all by default) unless its cache directory already holds it."""
    for name in names or list(SETS):
        crds = SETS[name]
        if crds.fetched():
            continue
        tools.CACHE.mkdir(parents=True, exist_ok=True)
        # One fetch per set across processes (parallel test sessions, `make tools`).
        with (tools.CACHE / f".crds-{name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not crds.fetched():
                print(f"CRDs of {name} {crds.version}: fetching", file=sys.stderr, flush=True)
                _fetch(crds)


def paths(names: list[str] | None = None) -> list[Path]:
    """The cached CRD files of the named sets (all by default), fetched if missing."""
    ensure(names)
    return [p for name in names or list(SETS) for p in SETS[name].paths()]


def names_in(files: list[Path]) -> list[str]:
    """``metadata.name`` of every CRD in the files (for waiting until they are Established)."""
    return [d["metadata"]["name"] for f in files for d in yaml.safe_load_all(f.read_text()) if d]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.crds")
    parser.add_argument("command", choices=("fetch", "paths"))
    parser.add_argument("names", nargs="*", help=f"any of: {', '.join(SETS)}")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(SETS)
    if unknown:
        parser.error(f"unknown CRD sets: {', '.join(sorted(unknown))}")
    if args.command == "fetch":
        ensure(args.names or None)
    else:
        print("\n".join(str(p) for p in paths(args.names or None)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
