"""A local Kubernetes control plane on loopback: etcd, kube-apiserver, controller-manager,
scheduler and kwok (fake nodes whose pods really get scheduled and reach Running/Ready).

    python -m hack.cluster up      # start (builds tools first if needed), print the kubeconfig path
    python -m hack.cluster env     # print `export KUBECONFIG=...`
    python -m hack.cluster down    # stop every process and remove the state directory
    python -m hack.cluster run     # up, wait for Ctrl-C, down

State lives in one directory (default ``$TMPDIR/paydeck-cluster-<name>``): certificates,
etcd data, logs, the kubeconfig and a JSON file with the processes' ids.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from hack import certs, tools
from hack.net import free_port

NODE_COUNT = 2
#: Room for 65,534 Services (a /24 ran out at about 250 PaymentServices in the scale benchmark).
SERVICE_CIDR = "10.0.0.0/16"
POD_CIDR = "10.244.0.0/16"
#: Each controller of kube-controller-manager talks to the API server through its own
#: client, at 20 requests/s (burst 30) by default: with hundreds of Jobs and Deployments
#: at once those limits, not the CPU, set how fast they converge (the scale benchmark's
#: floor was mostly waiting on them). Clusters of that size raise them; so does this one.
CONTROLLER_QPS, CONTROLLER_BURST = 200, 400


def default_dir(name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"paydeck-cluster-{name}"


def _node_manifest(index: int) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": f"kwok-node-{index}",
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": f"kwok-node-{index}",
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": f"zone-{index}",
                "type": "kwok",
            },
        },
        "spec": {},
        "status": {
            # Room for the scale benchmark's 1,000 PaymentServices (2,000 pods and their
            # Jobs' pods on two fake nodes): kwok pods cost nothing.
            "allocatable": {"cpu": "2000", "memory": "8Ti", "pods": "2500"},
            "capacity": {"cpu": "2000", "memory": "8Ti", "pods": "2500"},
        },
    }


@dataclass
class Cluster:
    """One local control plane, identified by its state directory."""

    directory: Path
    processes: dict[str, int] = field(default_factory=dict)
    server: str = ""

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def _state_file(self) -> Path:
        return self.directory / "state.json"

    # ---- lifecycle -------------------------------------------------------------------------

    def up(self, timeout: float = 120.0) -> Path:
        """Start every component and wait until the nodes are Ready; return the kubeconfig."""
        tools.ensure(["kubernetes", "etcd", "kwok"])
        if self.running():
            return self.kubeconfig
        self.down()
        started = time.monotonic()
        for attempt in range(3):
            try:
                self._start(timeout)
                break
            except RuntimeError as err:  # a component exited: most often a port race
                self.down()
                if attempt == 2:
                    raise
                print(f"retrying cluster start: {err}", file=sys.stderr)
            except BaseException:
                self.down()
                raise
        took = time.monotonic() - started
        print(f"cluster up in {took:.1f}s: {self.kubeconfig}", file=sys.stderr)
        return self.kubeconfig

    def running(self) -> bool:
        if not self._state_file.exists():
            return False
        try:
            state = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return False
        return all(_alive(pid) for pid in state.get("processes", {}).values()) and self._ready()

    def down(self) -> None:
        """Stop every process (whole process groups) and remove the state directory."""
        pids: dict[str, int] = dict(self.processes)
        if self._state_file.exists():
            with contextlib.suppress(ValueError, OSError):
                pids.update(json.loads(self._state_file.read_text()).get("processes", {}))
        # Only processes whose command line names this state directory are ours: a stale
        # state file (reboot, reused pids) must not make us kill a stranger.
        pids = {name: pid for name, pid in pids.items() if _mentions(pid, self.directory)}
        # Stop in reverse start order: kwok and controllers first, etcd last.
        for _, pid in reversed(list(pids.items())):
            _terminate(pid)
        for pid in _stray_pids(self.directory):
            _terminate(pid)
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self.processes.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    # ---- internals -------------------------------------------------------------------------

    def _start(self, timeout: float) -> None:
        d = self.directory
        (d / "logs").mkdir(parents=True, exist_ok=True)
        pki = d / "pki"
        certs.generate(pki)
        ports = {k: free_port() for k in ("etcd", "peer", "api", "kcm", "sched", "kwok")}
        self.server = f"https://127.0.0.1:{ports['api']}"
        self._write_kubeconfig(pki)
        kube = tools.TOOLS["kubernetes"].bin
        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['peer']}"
        self._spawn("etcd", [
            str(tools.binary("etcd")), "--name=paydeck", f"--data-dir={d / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=paydeck={peer_url}", "--unsafe-no-fsync",
            "--log-level=warn",
        ])
        self._spawn("kube-apiserver", [
            str(kube / "kube-apiserver"), f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", f"--secure-port={ports['api']}",
            f"--cert-dir={pki}", f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}", f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--allow-privileged=true", "--profiling=false", "--endpoint-reconciler-type=none",
            "--v=1",
        ])
        self._wait_ready(timeout)
        kubeconfig = str(self.kubeconfig)
        self._spawn("kube-controller-manager", [
            str(kube / "kube-controller-manager"), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            "--leader-elect=false", "--controllers=*", "--bind-address=127.0.0.1",
            f"--secure-port={ports['kcm']}", "--horizontal-pod-autoscaler-sync-period=5s",
            f"--kube-api-qps={CONTROLLER_QPS}", f"--kube-api-burst={CONTROLLER_BURST}",
            "--profiling=false", "--v=1",
        ])
        self._spawn("kube-scheduler", [
            str(kube / "kube-scheduler"), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={ports['sched']}",
            "--profiling=false", "--v=1",
        ])
        self._spawn("kwok", [
            str(tools.binary("kwok")), f"--kubeconfig={kubeconfig}",
            f"--config={tools.binary('kwok-stages')}", "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--server-address=127.0.0.1:{ports['kwok']}", f"--cidr={POD_CIDR}",
            "--node-ip=127.0.0.1", "--node-lease-duration-seconds=40",
        ])
        nodes = {"apiVersion": "v1", "kind": "List",
                 "items": [_node_manifest(i) for i in range(NODE_COUNT)]}
        self.kubectl("apply", "-f", "-", input=json.dumps(nodes))
        self.kubectl("wait", "--for=condition=Ready", "node", "--all", f"--timeout={int(timeout)}s")
        # A namespace is usable once its default ServiceAccount exists (pods need it).
        self._wait(lambda: self.kubectl("get", "serviceaccount", "default", check=False)
                   .returncode == 0, timeout, "the default ServiceAccount")

    def _write_kubeconfig(self, pki: Path) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "paydeck", "cluster": {
                "server": self.server, "certificate-authority": str(pki / "ca.crt")}}],
            "users": [{"name": "paydeck-admin", "user": {
                "client-certificate": str(pki / "admin.crt"),
                "client-key": str(pki / "admin.key")}}],
            "contexts": [{"name": "paydeck", "context": {
                "cluster": "paydeck", "user": "paydeck-admin", "namespace": "default"}}],
            "current-context": "paydeck",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.directory / "logs" / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=self.directory,
        )
        log.close()
        self.processes[name] = proc.pid
        self._state_file.write_text(json.dumps({"processes": self.processes}))

    def _ready(self) -> bool:
        pki = self.directory / "pki"
        try:
            config = json.loads(self.kubeconfig.read_text())
            server = config["clusters"][0]["cluster"]["server"]
            ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
            ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
            if not server.startswith("https://"):
                return False
            url = f"{server}/readyz"
            with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except (OSError, ValueError, KeyError):
            return False

    def _wait_ready(self, timeout: float) -> None:
        self._wait(self._ready, timeout, "kube-apiserver /readyz")

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, pid in self.processes.items():
                if not _alive(pid):
                    tail = self.log_tail(name)
                    raise RuntimeError(f"{name} exited while waiting for {what}:\n{tail}")
            if check():
                return
            time.sleep(0.2)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.directory / "logs" / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(tools.binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            input=input, text=True, capture_output=True, check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)


def _mentions(pid: int, directory: Path) -> bool:
    """Whether the process's command line names a path inside the state directory."""
    try:
        return f"{directory}/".encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _stray_pids(directory: Path) -> Iterator[int]:
    """Processes whose command line names the state directory (lost pid file, crashes)."""
    for entry in Path("/proc").iterdir():
        if (entry.name.isdigit() and int(entry.name) != os.getpid()
                and _mentions(int(entry.name), directory)):
            yield int(entry.name)


class Kubectl(Protocol):
    def __call__(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


def wait_established(kubectl: Kubectl, crds: Iterable[str], timeout: float = 60) -> None:
    """Wait until each CRD (by name) is Established.

    ``kubectl wait --for=condition=Established`` fails at once, instead of waiting, when it
    reads a CRD whose status has no conditions yet — which is what a fresh CRD looks like.
    """
    path = '{.status.conditions[?(@.type=="Established")].status}'
    deadline = time.monotonic() + timeout
    pending = list(crds)
    while pending:
        result = kubectl("get", "crd", pending[0], "-o", f"jsonpath={path}", check=False)
        if result.returncode == 0 and result.stdout.strip() == "True":
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"CRD {pending[0]} not Established after {timeout}s")
        time.sleep(0.2)


@contextlib.contextmanager
def running(directory: Path) -> Iterator[Cluster]:
    """A cluster for the duration of a with-block; torn down on exit, errors and Ctrl-C."""
    cluster = Cluster(directory)
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "env", "run", "status"])
    parser.add_argument("--name", default=os.environ.get("PAYDECK_CLUSTER", "dev"))
    parser.add_argument("--dir", type=Path, default=None, help="state directory")
    args = parser.parse_args(argv)
    cluster = Cluster(args.dir or default_dir(args.name))
    if args.command == "up":
        try:
            print(cluster.up())
        except KeyboardInterrupt:
            cluster.down()
            return 130
    elif args.command == "down":
        cluster.down()
    elif args.command == "env":
        print(f"export KUBECONFIG={cluster.kubeconfig}")
    elif args.command == "status":
        ok = cluster.running()
        print("running" if ok else "stopped")
        return 0 if ok else 1
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        # Ctrl-C at any moment (even while starting) ends in running()'s teardown.
        with contextlib.suppress(KeyboardInterrupt), running(cluster.directory):
            print(f"cluster running; KUBECONFIG={cluster.kubeconfig}; Ctrl-C stops it", flush=True)
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
