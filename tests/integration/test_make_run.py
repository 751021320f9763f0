"""`make run`'s last step (python -m hack.run) against the session cluster: nodes Ready, the
CRDs installed, the operator in the foreground, the sample Ready, Ctrl-C stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_run_ends_with_ready_nodes_and_a_ready_sample(cluster):
    env = {**os.environ, "PAYDECK_KUBECONFIG": str(cluster.kubeconfig)}
    proc = subprocess.Popen([sys.executable, "-m", "hack.run"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "is Ready." in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(timeout=180), "".join(lines[-60:])
        output = "".join(lines)
        nodes = [ln.split() for ln in output.splitlines() if ln.startswith("kwok-node-")]
        assert nodes and all(cols[1] == "Ready" for cols in nodes), output
        assert any(ln.startswith("paymentservice.paydeck.dev/payments") and "Healthy" in ln
                   for ln in output.splitlines()), output
        # Delete the sample while the operator still runs, so its finalizer is released.
        cluster.kubectl("delete", "paysvc", "payments", "-n", "payments", "--timeout=60s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=60)
        cluster.kubectl("delete", "namespace", "payments", "--wait=false", check=False)
    assert code == 0, "".join(lines[-40:])
