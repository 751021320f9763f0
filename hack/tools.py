"""Build the test bed's binaries from the Go module proxy, once, into a versioned cache.

Every tool lands in ``~/.cache/paydeck/<tool>-<version>/bin``; a tool whose directory
already holds its binaries is never rebuilt (``crds``: the upstream CRDs of the optional
APIs, see :mod:`hack.crds`).  Usage::

    python -m hack.tools build [kubernetes etcd kwok stripe-mock helm prometheus otelcol crds]
    python -m hack.tools path kubectl
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.7.0"
STRIPE_MOCK_VERSION = "v0.203.0"
HELM_VERSION = "v3.21.4"
#: Prometheus v3.x publishes its Go module as v0.3xx.y (v0.316.0 is Prometheus 3.16.0).
PROMETHEUS_VERSION = "v0.316.0"
#: One release for every OpenTelemetry Collector module (core v0.161.0 goes with contrib's
#: v0.161.0 fileexporter; newer fileexporter releases are not served in a working set here).
OTELCOL_VERSION = "v0.161.0"
OTELCOL_MODULES = (
    "go.opentelemetry.io/collector/otelcol",
    "go.opentelemetry.io/collector/receiver/otlpreceiver",
    "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter",
)

CACHE = Path(os.environ.get("PAYDECK_CACHE", Path.home() / ".cache" / "paydeck"))
KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


@dataclass(frozen=True)
class Tool:
    """One cached tool: where it lives and which binaries it provides."""

    name: str
    version: str
    binaries: tuple[str, ...]

    @property
    def home(self) -> Path:
        return CACHE / f"{self.name}-{self.version}"

    @property
    def bin(self) -> Path:
        return self.home / "bin"

    def built(self) -> bool:
        files = [self.bin / b for b in self.binaries]
        if self.name == "kwok":
            files.append(self.home / "stages.yaml")
        return all(f.is_file() for f in files)


TOOLS: dict[str, Tool] = {
    "kubernetes": Tool("kubernetes", KUBERNETES_VERSION, KUBE_COMMANDS),
    "etcd": Tool("etcd", ETCD_VERSION, ("etcd",)),
    "kwok": Tool("kwok", KWOK_VERSION, ("kwok",)),
    "stripe-mock": Tool("stripe-mock", STRIPE_MOCK_VERSION, ("stripe-mock",)),
    "helm": Tool("helm", HELM_VERSION, ("helm",)),
    "prometheus": Tool("prometheus", PROMETHEUS_VERSION, ("prometheus",)),
    "otelcol": Tool("otelcol", OTELCOL_VERSION, ("otelcol",)),
}


def binary(name: str) -> Path:
    """Path of a built binary such as ``kubectl`` (raises if not built)."""
    for tool in TOOLS.values():
        if name in tool.binaries:
            path = tool.bin / name
            if not path.is_file():
                raise FileNotFoundError(f"{name} is not built yet: run python -m hack.tools build")
            return path
    if name == "kwok-stages":
        return kwok_test_stages()
    raise KeyError(name)


#: Job pods whose first container runs one of these images fail, or complete slowly: the
#: test bed's way to make a migration Job fail or outlast an operator restart.
KWOK_FAIL_IMAGE = "paydeck.invalid/payment-runtime:fail-migration"
KWOK_SLOW_IMAGE = "paydeck.invalid/payment-runtime:slow-migration"
KWOK_SLOW_MILLISECONDS = 12000
#: Pods of this image never start: their container waits with CreateContainerConfigError, as
#: a pod whose secretKeyRef names a missing Secret does on a real node.
KWOK_CONFIG_ERROR_IMAGE = "paydeck.invalid/payment-runtime:config-error"
KWOK_STAGES_VERSION = "v2"


_CONFIG_ERROR_STATUS = """\
{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  type: Ready
  reason: ContainersNotReady
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  type: ContainersReady
  reason: ContainersNotReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  restartCount: 0
  started: false
  state:
    waiting:
      reason: CreateContainerConfigError
      message: secret "payments-db" not found
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) \
( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: Pending
startTime: {{ $now | Quote }}
"""


def kwok_test_stages() -> Path:
    """The standard stages plus two for the tests: failing and slow Job pods.

    Derived from ``stages.yaml`` (written when kwok is built) and cached beside it.
    """
    home = TOOLS["kwok"].home
    out = home / f"stages-paydeck-{KWOK_STAGES_VERSION}-{KWOK_SLOW_MILLISECONDS}.yaml"
    if out.is_file():
        return out
    docs = list(yaml.safe_load_all((home / "stages.yaml").read_text()))
    special = {"key": ".spec.containers.[0].image", "operator": "In",
               "values": [KWOK_FAIL_IMAGE, KWOK_SLOW_IMAGE]}
    extra = []
    config_error = {"key": ".spec.containers.[0].image", "operator": "In",
                    "values": [KWOK_CONFIG_ERROR_IMAGE]}
    for doc in docs:
        if doc["metadata"]["name"] == "pod-ready":
            stuck = json.loads(json.dumps(doc))
            doc["spec"]["selector"]["matchExpressions"].append(
                {**config_error, "operator": "NotIn"})
            stuck["metadata"]["name"] = "paydeck-pod-config-error"
            stuck["spec"]["selector"]["matchExpressions"].append(config_error)
            stuck["spec"]["next"]["statusTemplate"] = _CONFIG_ERROR_STATUS
            extra.append(stuck)
        if doc["metadata"]["name"] != "pod-complete":
            continue
        expressions = doc["spec"]["selector"]["matchExpressions"]
        fail = json.loads(json.dumps(doc))
        slow = json.loads(json.dumps(doc))
        expressions.append({**special, "operator": "NotIn"})
        fail["metadata"]["name"] = "paydeck-pod-fail"
        fail["spec"]["selector"]["matchExpressions"].append({**special,
                                                             "values": [KWOK_FAIL_IMAGE]})
        template = fail["spec"]["next"]["statusTemplate"]
        fail["spec"]["next"]["statusTemplate"] = (
            template.replace("exitCode: 0", "exitCode: 1").replace("reason: Completed",
                                                                  "reason: Error")
            .replace("phase: Succeeded", "phase: Failed"))
        slow["metadata"]["name"] = "paydeck-pod-complete-slow"
        slow["spec"]["selector"]["matchExpressions"].append({**special,
                                                             "values": [KWOK_SLOW_IMAGE]})
        slow["spec"]["delay"] = {"durationMilliseconds": KWOK_SLOW_MILLISECONDS}
        extra += [fail, slow]
    staged = out.with_suffix(".tmp")
    staged.write_text(yaml.safe_dump_all(docs + extra, sort_keys=False))
    staged.rename(out)
    return out


def _go(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", **(env or {})}
    print("+ go " + " ".join(args), file=sys.stderr, flush=True)
    result = subprocess.run(
        ["go", *args], cwd=cwd, env=full_env, check=True, text=True, stdout=subprocess.PIPE
    )
    return result.stdout


def _module_dir(module: str, version: str, cwd: Path) -> Path:
    info = json.loads(_go(["mod", "download", "-json", f"{module}@{version}"], cwd))
    return Path(info["Dir"])


def _scratch_module(name: str) -> Path:
    work = Path(tempfile.mkdtemp(prefix=f"paydeck-build-{name}-"))
    _go(["mod", "init", f"paydeck.local/build/{name}"], work)
    return work


def _finish(tool: Tool, staged: Path) -> None:
    tool.home.mkdir(parents=True, exist_ok=True)
    final = tool.bin
    if final.exists():
        shutil.rmtree(final)
    staged.rename(final)


def build_kubernetes(tool: Tool) -> None:
    """kube-apiserver, controller-manager, scheduler and kubectl of one pinned release.

    k8s.io/kubernetes replaces its staging modules with local paths, which a dependent module
    ignores; so the throwaway module replaces each with the matching v0.x release instead.
    """
    work = _scratch_module("kubernetes")
    upstream = _module_dir("k8s.io/kubernetes", tool.version, work) / "go.mod"
    text = upstream.read_text()
    staging = sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/", text, re.M)))
    minor_release = "v0." + tool.version.removeprefix("v1.")
    godebug = re.findall(r"^godebug .*$", text, re.M)
    go_line = re.search(r"^go (\S+)$", text, re.M)
    lines = ["module paydeck.local/build/kubernetes", ""]
    lines.append(f"go {go_line.group(1) if go_line else '1.24'}")
    lines.extend(godebug)
    lines.append(f"require k8s.io/kubernetes {tool.version}")
    lines.extend(f"replace {mod} => {mod} {minor_release}" for mod in staging)
    (work / "go.mod").write_text("\n".join(lines) + "\n")
    (work / "tools.go").write_text(
        "//go:build tools\n\npackage tools\n\nimport (\n"
        + "".join(f'\t_ "k8s.io/kubernetes/cmd/{c}"\n' for c in KUBE_COMMANDS[:-1])
        + '\t_ "k8s.io/kubectl/pkg/cmd"\n)\n'
    )
    major, minor, _ = tool.version.removeprefix("v").split(".")
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={tool.version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate={date}",
        ]
    staged = work / "out"
    staged.mkdir()
    _go(["mod", "tidy"], work, {"GOFLAGS": ""})
    _go(
        [
            "build", "-trimpath", "-tags", "selinux,notest,grpcnotrace",
            "-ldflags", "-s -w " + " ".join(flags), "-o", str(staged) + "/",
            *(f"k8s.io/kubernetes/cmd/{c}" for c in KUBE_COMMANDS),
        ],
        work,
    )
    _finish(tool, staged)
    shutil.rmtree(work, ignore_errors=True)


def _build_simple(
    tool: Tool, module: str, package: str, out_name: str, tags: str = ""
) -> Path:
    """Build one main package of a module that needs no replace directives."""
    work = _scratch_module(tool.name)
    (work / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{package}"\n')
    _go(["get", f"{module}@{tool.version}"], work, {"GOFLAGS": ""})
    _go(["mod", "tidy"], work, {"GOFLAGS": ""})
    staged = work / "out"
    staged.mkdir()
    tag_args = ["-tags", tags] if tags else []
    _go(["build", "-trimpath", *tag_args, "-ldflags", "-s -w", "-o", str(staged / out_name),
         package], work)
    return work


def build_etcd(tool: Tool) -> None:
    work = _build_simple(tool, "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/server/v3", "etcd")
    _finish(tool, work / "out")
    shutil.rmtree(work, ignore_errors=True)


KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)


def write_kwok_stages(tool: Tool) -> None:
    """The standard node and pod stages, which the bare kwok binary does not ship."""
    src = _module_dir("sigs.k8s.io/kwok", tool.version, Path(tempfile.gettempdir()))
    docs = [(src / "kustomize" / "stage" / rel).read_text().strip() for rel in KWOK_STAGES]
    (tool.home / "stages.yaml").write_text("\n---\n".join(docs) + "\n")


def build_kwok(tool: Tool) -> None:
    work = _build_simple(tool, "sigs.k8s.io/kwok", "sigs.k8s.io/kwok/cmd/kwok", "kwok")
    _finish(tool, work / "out")
    write_kwok_stages(tool)
    shutil.rmtree(work, ignore_errors=True)


def build_stripe_mock(tool: Tool) -> None:
    module = "github.com/stripe/stripe-mock"
    work = _build_simple(tool, module, module, "stripe-mock")
    _finish(tool, work / "out")
    shutil.rmtree(work, ignore_errors=True)


def build_helm(tool: Tool) -> None:
    work = _build_simple(tool, "helm.sh/helm/v3", "helm.sh/helm/v3/cmd/helm", "helm")
    _finish(tool, work / "out")
    shutil.rmtree(work, ignore_errors=True)


def build_prometheus(tool: Tool) -> None:
    """The Prometheus server, with only the file and static service discovery.

    ``remove_all_sd`` drops the cloud and Kubernetes discovery plugins (``plugins/``): the
    test bed's targets come from a file, which ``discovery/file`` (always built) reads.  No web
    UI assets are embedded; the HTTP API the analysis queries is all the tests need.
    """
    work = _build_simple(tool, "github.com/prometheus/prometheus",
                         "github.com/prometheus/prometheus/cmd/prometheus", "prometheus",
                         tags="remove_all_sd")
    _finish(tool, work / "out")
    shutil.rmtree(work, ignore_errors=True)


def build_otelcol(tool: Tool) -> None:
    """A minimal OpenTelemetry Collector: the OTLP receiver and the file exporter.

    The upstream distributions (otelcorecol, otelcol-contrib) are generated by the collector
    builder with replace directives and dozens of components; ``hack/otelcol/main.go`` wires
    just the two the tracing tests need, built in a throwaway module.
    """
    work = _scratch_module(tool.name)
    shutil.copy(Path(__file__).parent / "otelcol" / "main.go", work / "main.go")
    _go(["get", *(f"{module}@{tool.version}" for module in OTELCOL_MODULES)], work,
        {"GOFLAGS": ""})
    _go(["mod", "tidy"], work, {"GOFLAGS": ""})
    staged = work / "out"
    staged.mkdir()
    _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(staged / "otelcol"), "."], work)
    _finish(tool, staged)
    shutil.rmtree(work, ignore_errors=True)


BUILDERS = {
    "kubernetes": build_kubernetes,
    "etcd": build_etcd,
    "kwok": build_kwok,
    "stripe-mock": build_stripe_mock,
    "helm": build_helm,
    "prometheus": build_prometheus,
    "otelcol": build_otelcol,
}


def ensure(names: list[str] | None = None) -> None:
    """Build each named tool unless its cache directory already holds it."""
    for name in names or list(TOOLS):
        tool = TOOLS[name]
        if tool.built():
            continue
        CACHE.mkdir(parents=True, exist_ok=True)
        # One builder per tool across processes (a test session and `make tools`, say).
        with (CACHE / f".{name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if tool.built():
                continue
            print(f"{name} {tool.version}: building (cold)", file=sys.stderr, flush=True)
            started = time.monotonic()
            scratch = set(Path(tempfile.gettempdir()).glob(f"paydeck-build-{name}-*"))
            try:
                BUILDERS[name](tool)
            finally:  # a failed build leaves no scratch module behind
                for leftover in set(Path(tempfile.gettempdir()).glob(f"paydeck-build-{name}-*")):
                    if leftover not in scratch:
                        shutil.rmtree(leftover, ignore_errors=True)
            took = time.monotonic() - started
            print(f"{name} {tool.version}: built in {took:.0f}s", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.tools")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build tools that are not cached yet")
    build.add_argument("names", nargs="*", help=f"any of: {', '.join(TOOLS)}, crds")
    path = sub.add_parser("path", help="print a built binary's path")
    path.add_argument("binary")
    args = parser.parse_args(argv)
    if args.command == "build":
        from hack import crds  # it imports this module

        names = args.names or [*TOOLS, "crds"]
        unknown = set(names) - set(TOOLS) - {"crds"}
        if unknown:
            parser.error(f"unknown tools: {', '.join(sorted(unknown))}")
        if binaries := [n for n in names if n in TOOLS]:
            ensure(binaries)
        if "crds" in names:
            crds.ensure()
    else:
        print(binary(args.binary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
