"""The operator as a real process against the session's cluster, and helpers to watch it work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hack import crds
from hack.cluster import wait_established
from hack.net import free_port
from tests.e2e import secrets
from tests.fixtures.cluster import KubeCluster

#: The session operator's drift timer is slow on purpose: drift must be undone by child events.
SESSION_RESYNC_SECONDS = 300


class OperatorProcess:
    """`payment-operator` in a subprocess, logging to a file; restartable."""

    def __init__(
        self, kubeconfig: Path, args: tuple[str, ...] = ("--standalone",),
        env: dict[str, str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.args = args
        self.extra_env = env or {}
        fd, log = tempfile.mkstemp(prefix="paydeck-operator-", suffix=".log")
        os.close(fd)
        self.log = Path(log)
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PAYDECK_RESYNC_SECONDS": str(SESSION_RESYNC_SECONDS),
            "PAYDECK_METRICS_PORT": str(self.metrics_port),
            "PAYDECK_LIVENESS_PORT": str(free_port()),
            "PAYDECK_DISCOVERY_TTL_SECONDS": "2",
            **self.extra_env,
        }
        exe = Path(sys.executable).parent / "payment-operator"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(exe), *self.args], env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def reconciles(self, *label_filters: str) -> float:
        """Reconcile passes this process has run (those whose labels contain every filter,
        such as 'trigger="resync"'), from its own /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("paydeck_reconcile_total{")
            and all(f in line for f in label_filters)
        )

    def child_events(self, kind: str) -> float:
        """Watch events on children of ``kind`` this process has seen, from its /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("paydeck_child_events_total{")
                   and f'kind="{kind}"' in line)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


# Package scope: the operator stops when the e2e tests are done, so later tests that write a
# PaymentService's status by hand (tests/integration/api) have no operator competing with them.
@pytest.fixture(scope="package")
def operator(cluster: KubeCluster, crd: Path) -> Iterator[OperatorProcess]:
    op = OperatorProcess(cluster.kubeconfig)
    op.start()
    yield op
    # Let the tests' namespaces finish terminating while the operator can still release its
    # finalizers: otherwise they would hang in Terminating (on kind, say) after the suite.
    deadline = time.monotonic() + 120
    while ("Terminating" in cluster.kubectl("get", "namespaces").stdout
           and time.monotonic() < deadline):
        time.sleep(1)
    op.stop()
    op.log.unlink(missing_ok=True)


@pytest.fixture(scope="package")
def third_party_crds(cluster: KubeCluster) -> list[Path]:
    """The real CRDs of the Prometheus Operator, External Secrets and the Secrets Store CSI
    driver (cached from their releases' Go modules) and Strimzi's KafkaTopic (generated from
    its Maven jars), see hack/crds.py.
    """
    files = crds.paths(crds.OPTIONAL_APIS)
    # Server-side: the SecretStore CRDs are too big for client-side apply's annotation.
    cluster.kubectl("apply", "--server-side", "--field-manager=tests",
                    *(arg for f in files for arg in ("-f", str(f))))
    wait_established(cluster.kubectl, crds.names_in(files))
    time.sleep(3)  # past the e2e operators' discovery cache TTL (2 s)
    return files


def play_sync_controllers(cluster: KubeCluster, namespace: str) -> int:
    """Do what External Secrets, the Secrets Store CSI driver and Strimzi's topic operator
    would (none runs here): write every ExternalSecret's target Secret and every Secret a
    SecretProviderClass syncs, and mark every ExternalSecret and KafkaTopic of the namespace
    Ready.  Returns how many objects it played for."""
    ready = {"status": {"conditions": [{
        "type": "Ready", "status": "True", "reason": "Synced", "message": "synced by the test",
        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
    done = 0
    for kind in ("externalsecrets.external-secrets.io", "kafkatopics.kafka.strimzi.io"):
        items = (get_json(cluster, kind, "-n", namespace) or {}).get("items", [])
        for item in items:
            if not any(c.get("type") == "Ready" and c.get("status") == "True"
                       for c in (item.get("status") or {}).get("conditions") or []):
                if kind.startswith("externalsecrets."):
                    secrets.sync_external_secret(cluster, namespace, item)
                cluster.kubectl("patch", kind, item["metadata"]["name"], "-n", namespace,
                                "--subresource=status", "--type=merge",
                                "-p", json.dumps(ready))
            done += 1
    classes = (get_json(cluster, "secretproviderclasses.secrets-store.csi.x-k8s.io", "-n",
                        namespace) or {}).get("items", [])
    if classes:
        have = {s["metadata"]["name"] for s in get_json(cluster, "secrets", "-n",
                                                        namespace)["items"]}
        for item in classes:
            wanted = {o["secretName"] for o in item["spec"].get("secretObjects") or []}
            if wanted - have:
                secrets.sync_provider_class(cluster, namespace, item)
            done += 1
    return done


def wait_for(predicate: Callable[[], object], timeout: float, what: str,
             op: OperatorProcess | None = None) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    detail = f"\noperator log:\n{op.tail()}" if op else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")


def get_json(cluster: KubeCluster, *args: str) -> dict | None:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)


def condition(obj: dict | None, type_: str) -> dict:
    for cond in (obj or {}).get("status", {}).get("conditions", []):
        if cond["type"] == type_:
            return cond
    return {}
