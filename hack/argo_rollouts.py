"""Argo Rollouts' controller and CRDs for ``make bench`` only, built from the Go module proxy.

Its go.mod carries a large ``replace`` block (k8s.io/* and two others) that a dependent module
would ignore, so the controller is built inside a writable copy of the module's own directory
(``go mod download -json`` gives it).  The binary and the CRDs of ``manifests/crds/`` land in
``~/.cache/paydeck/argo-rollouts-<version>/``; ``make test`` never needs them.  Usage::

    python -m hack.argo_rollouts build
    python -m hack.argo_rollouts path      # the controller binary
"""

from __future__ import annotations

import argparse
import fcntl
import shutil
import sys
import tempfile
import time
from pathlib import Path

from hack import tools

#: v1.10.2 wants go1.26.10; v1.10.1 builds with this machine's Go.
VERSION = "v1.10.1"
MODULE = "github.com/argoproj/argo-rollouts"
TOOL = tools.Tool("argo-rollouts", VERSION, ("rollouts-controller",))
#: The CRDs the controller watches (it refuses to start without them).
CRD_FILES = ("rollout-crd.yaml", "analysis-run-crd.yaml", "analysis-template-crd.yaml",
             "cluster-analysis-template-crd.yaml", "experiment-crd.yaml")


def crd_paths() -> list[Path]:
    return [TOOL.home / "crds" / name for name in CRD_FILES]


def built() -> bool:
    return TOOL.built() and all(p.is_file() for p in crd_paths())


def _build() -> None:
    work = Path(tempfile.mkdtemp(prefix="paydeck-build-argo-rollouts-"))
    try:
        src = tools._module_dir(MODULE, VERSION, work)
        copy = work / "src"
        shutil.copytree(src, copy)
        copy.chmod(0o755)
        for path in copy.rglob("*"):  # the module cache is read-only
            path.chmod(0o755 if path.is_dir() else 0o644)
        staged = work / "out"
        staged.mkdir()
        tools._go(["build", "-trimpath", "-ldflags", "-s -w", "-o",
                   str(staged / "rollouts-controller"), "./cmd/rollouts-controller"], copy)
        crds = TOOL.home / "crds"
        crds.mkdir(parents=True, exist_ok=True)
        for name in CRD_FILES:
            shutil.copyfile(copy / "manifests" / "crds" / name, crds / name)
        tools._finish(TOOL, staged)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure() -> None:
    """Build the controller and copy its CRDs unless they are cached already."""
    if built():
        return
    tools.CACHE.mkdir(parents=True, exist_ok=True)
    with (tools.CACHE / f".{TOOL.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if built():
            return
        print(f"argo-rollouts {VERSION}: building (cold)", file=sys.stderr, flush=True)
        started = time.monotonic()
        _build()
        print(f"argo-rollouts {VERSION}: built in {time.monotonic() - started:.0f}s",
              file=sys.stderr, flush=True)


def binary() -> Path:
    path = TOOL.bin / "rollouts-controller"
    if not path.is_file():
        raise FileNotFoundError("not built yet: run python -m hack.argo_rollouts build")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.argo_rollouts")
    parser.add_argument("command", choices=("build", "path"))
    args = parser.parse_args(argv)
    if args.command == "build":
        ensure()
    else:
        print(binary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
