"""`kubectl paydeck` as a user runs it: the installed console script against the API server.

One canary rollout paused at its pause steps: ``get`` shows both revisions and their pods,
commands that make no sense are refused without a write, ``promote`` moves the canary on and
``abort`` degrades it, both through ``status.command`` alone (``spec`` and
``metadata.generation`` stay as they were), and ``get --watch`` ends cleanly on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import get_json, wait_for
from tests.e2e.test_rollout import IMAGE_2, NAME, phase_is, ps, set_image, start

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

PLUGIN = Path(sys.executable).parent / "kubectl-paydeck"
STEPS = [{"setWeight": 50}, {"pause": {}}, {"pause": {}}]


def paydeck(cluster, *args, kubeconfig=None, check=True):
    result = subprocess.run(
        [str(PLUGIN), "--kubeconfig", str(kubeconfig or cluster.kubeconfig), *args],
        capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl paydeck {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def service_pods(cluster, namespace):
    items = get_json(cluster, "pods", "-n", namespace,
                     "-l", f"app.kubernetes.io/instance={NAME}")["items"]
    return sorted(p["metadata"]["name"] for p in items if not p["metadata"].get(
        "deletionTimestamp"))


def paused_at(cluster, namespace, index):
    def check():
        obj = ps(cluster, namespace) or {}
        status = obj.get("status", {})
        ok = (status.get("phase") == "Paused"
              and (status.get("canary") or {}).get("stepIndex") == index
              and status.get("readyReplicas") == status.get("replicas"))
        return obj if ok else None
    return check


def watch_once(cluster, namespace):
    """`get --watch` until its first frame is drawn, then Ctrl-C: (exit code, output)."""
    proc = subprocess.Popen(
        [str(PLUGIN), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace,
         "get", NAME, "--watch"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    killer = threading.Timer(30, proc.kill)
    killer.start()
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "PaymentService" in line:  # the tree's first row: the frame is on its way
                break
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=15)
    finally:
        killer.cancel()
    return proc.returncode, "".join(lines) + rest


def test_get_promote_abort_through_status_only(cluster, namespace, operator, tmp_path):
    first = start(cluster, namespace, operator, steps=STEPS, replicas=2)
    refused = paydeck(cluster, "-n", namespace, "promote", NAME, check=False)
    assert refused.returncode == 1
    assert "no canary is in flight (phase Healthy)" in refused.stderr

    set_image(cluster, namespace, IMAGE_2)
    obj = wait_for(paused_at(cluster, namespace, 1), 40, "Paused at the first pause", operator)
    status, spec, generation = obj["status"], obj["spec"], obj["metadata"]["generation"]
    stable, canary = status["stableRevision"], status["canaryRevision"]

    # get: the header, both revisions with their Deployments and every pod.
    out = paydeck(cluster, "-n", namespace, "get", NAME).stdout
    assert "Status:              ॥ Paused" in out
    assert "  Step:              2/3: pause (until promoted)" in out
    assert "  SetWeight:         50" in out
    assert f"{IMAGE_2} (canary)" in out and f"{first['spec']['image']} (stable)" in out
    for revision, role in ((stable, "stable"), (canary, "canary")):
        assert f"# revision:{revision}" in out
        row = next(r for r in out.splitlines() if f"⧉ {NAME}-{revision}" in r)
        assert "Deployment" in row and row.endswith(f"{role}, ready:1/1"), row
    pod_names = service_pods(cluster, namespace)
    assert len(pod_names) == 2
    for name in pod_names:
        row = next(r for r in out.splitlines() if f"□ {name}" in r)
        assert "✔ Running" in row and row.endswith("ready:1/1"), row
    assert "MigrationsApplied: ✔ True" in out
    assert f"✔ Succeeded  revision {canary}, Job {NAME}-migrate-{canary}" in out

    # The kubeconfig context's namespace is the default, as with kubectl.
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for ctx in config["contexts"]:
        ctx["context"]["namespace"] = namespace
    scoped = tmp_path / "kubeconfig"
    scoped.write_text(yaml.safe_dump(config))
    assert f"Namespace:           {namespace}" in paydeck(
        cluster, "get", NAME, kubeconfig=scoped).stdout

    # A command that makes no sense now is refused and writes nothing.
    refused = paydeck(cluster, "-n", namespace, "retry", NAME, check=False)
    assert refused.returncode == 1 and "the rollout is not aborted" in refused.stderr
    assert ps(cluster, namespace)["status"].get("command") is None

    # promote: on to the second pause; spec and generation untouched.
    done = paydeck(cluster, "-n", namespace, "promote", NAME).stdout
    assert "promote requested at" in done and "skip step 2/3 (pause (until promoted))" in done
    obj = wait_for(paused_at(cluster, namespace, 2), 30, "Paused at the second pause", operator)
    command = obj["status"]["command"]
    assert command["action"] == "promote" and command["requestedBy"]
    assert obj["status"]["lastHandledCommandAt"] == command["requestedAt"]
    assert obj["spec"] == spec and obj["metadata"]["generation"] == generation

    code, frames = watch_once(cluster, namespace)
    assert code == 0, frames
    assert "  Step:              3/3: pause (until promoted)" in frames
    assert "Traceback" not in frames

    # abort: Degraded, stable alone; again only status changed.
    done = paydeck(cluster, "-n", namespace, "abort", NAME).stdout
    assert f"scale canary revision {canary} to 0" in done
    obj = wait_for(phase_is(cluster, namespace, "Degraded"), 30, "Degraded", operator)
    assert f"aborted by {command['requestedBy']}" in obj["status"]["message"]
    assert obj["spec"] == spec and obj["metadata"]["generation"] == generation
    out = paydeck(cluster, "-n", namespace, "get", NAME).stdout
    assert "Status:              ✖ Degraded" in out
    assert f"  Aborted:           AbortCommand: aborted by {command['requestedBy']}" in out
    refused = paydeck(cluster, "-n", namespace, "abort", NAME, check=False)
    assert refused.returncode == 1 and "aborted already" in refused.stderr
