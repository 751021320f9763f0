"""`make run`: a local cluster, the CRDs, the operator in the foreground and a sample applied.

The cluster outlives the operator (inspect it with the printed KUBECONFIG); `make down`
removes it.  Point at another cluster with PAYDECK_KUBECONFIG (never a default kubeconfig).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hack import cluster as local_cluster
from hack import tools
from hack.net import free_port

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "payments"
SAMPLE = ROOT / "manifests" / "samples" / "minimal.yaml"
# Placeholder credentials for the sample's Secrets: not real secrets, the pods are kwok fakes.
SAMPLE_SECRETS = {
    "payments-stripe": {"secret-key": "sk_test_local_placeholder"},
    "payments-db": {"url": "postgresql://payments@postgres.payments:5432/payments"},
}


def _kubectl(kubeconfig: Path, *args: str, input: str | None = None) -> str:
    cmd = [str(tools.binary("kubectl")), f"--kubeconfig={kubeconfig}", *args]
    return subprocess.run(cmd, input=input, text=True, check=True, capture_output=True).stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.run", description=__doc__)
    parser.add_argument("--cluster", default="dev", help="name of the local cluster")
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    args = parser.parse_args(argv)

    external = os.environ.get("PAYDECK_KUBECONFIG")
    if external:
        kubeconfig = Path(external)
        tools.ensure(["kubernetes"])
    else:
        kubeconfig = local_cluster.Cluster(local_cluster.default_dir(args.cluster)).up()
    print(_kubectl(kubeconfig, "get", "nodes"))

    _kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    def kubectl(*args: str, input: str | None = None, check: bool = True
                ) -> subprocess.CompletedProcess[str]:
        cmd = [str(tools.binary("kubectl")), f"--kubeconfig={kubeconfig}", *args]
        return subprocess.run(cmd, input=input, text=True, check=check, capture_output=True)

    local_cluster.wait_established(kubectl, ["paymentservices.paydeck.dev"])
    namespace_doc = f"""apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/warn: restricted
"""
    _kubectl(kubeconfig, "apply", "--server-side", "-f", "-", input=namespace_doc)
    for name, data in SAMPLE_SECRETS.items():
        literal = [f"--from-literal={k}={v}" for k, v in data.items()]
        manifest = _kubectl(kubeconfig, "create", "secret", "generic", name, "-n", NAMESPACE,
                            *literal, "--dry-run=client", "-o", "yaml")
        _kubectl(kubeconfig, "apply", "--server-side", "-f", "-", input=manifest)

    env = {**os.environ, "KUBECONFIG": str(kubeconfig),
           "PAYDECK_METRICS_PORT": str(free_port()), "PAYDECK_LIVENESS_PORT": str(free_port())}
    operator = subprocess.Popen(
        [str(Path(sys.executable).parent / "payment-operator"), "--standalone"], env=env
    )
    try:
        _kubectl(kubeconfig, "apply", "--server-side", "-n", NAMESPACE, "-f", str(args.sample))
        name = _kubectl(kubeconfig, "get", "-n", NAMESPACE, "-f", str(args.sample),
                        "-o", "jsonpath={.metadata.name}").strip()
        deadline = time.monotonic() + 180
        ready = False
        while not ready and time.monotonic() < deadline and operator.poll() is None:
            with contextlib.suppress(subprocess.CalledProcessError):
                _kubectl(kubeconfig, "wait", "--for=condition=Ready", f"paysvc/{name}",
                         "-n", NAMESPACE, "--timeout=10s")
                ready = True
        if not ready:
            print(_kubectl(kubeconfig, "get", "paysvc", name, "-n", NAMESPACE, "-o", "yaml"))
            print(f"paysvc/{name} did not become Ready", file=sys.stderr)
            return 1
        print(_kubectl(kubeconfig, "get", "paysvc,deploy,pods,svc,hpa,pdb,networkpolicy",
                       "-n", NAMESPACE), flush=True)
        print(f"paysvc/{name} is Ready.\n"
              f"The operator runs in the foreground; Ctrl-C stops it (the cluster stays up).\n"
              f"  export KUBECONFIG={kubeconfig}\n  make down   # removes the cluster\n",
              flush=True)
        operator.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if operator.poll() is None:
            operator.send_signal(signal.SIGINT)
            try:
                operator.wait(timeout=15)
            except subprocess.TimeoutExpired:
                operator.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
