"""The operator process listens where its settings say: /metrics and /healthz on 127.0.0.1 only.

The real ``payment-operator`` entry point runs against the session's API server with
``PAYDECK_METRICS_BIND_ADDRESS`` and ``PAYDECK_LIVENESS_BIND_ADDRESS`` set to 127.0.0.1; the
kernel's socket table (/proc/net/tcp, tcp6) must then show both ports listening on 127.0.0.1
and on no other address, and both endpoints answer there.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import pytest

from hack.net import free_port
from tests.e2e.conftest import OperatorProcess
from tests.fixtures.cluster import KubeCluster

pytestmark = pytest.mark.e2e

LISTEN = "0A"


def listening(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (this network namespace)."""
    found: set[str] = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] != LISTEN or int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(address)
            # /proc prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(socket.inet_ntop(family, raw))
    return found


def test_operator_binds_metrics_and_liveness_to_loopback_only(
    cluster: KubeCluster, crd: Path
) -> None:
    metrics, liveness = free_port(), free_port()
    op = OperatorProcess(cluster.kubeconfig, env={
        "PAYDECK_METRICS_BIND_ADDRESS": "127.0.0.1",
        "PAYDECK_LIVENESS_BIND_ADDRESS": "127.0.0.1",
        "PAYDECK_LIVENESS_PORT": str(liveness),
    })
    op.metrics_port = metrics
    op.start()
    try:
        deadline = time.monotonic() + 60
        while not (listening(metrics) and listening(liveness)):
            assert op.proc is not None and op.proc.poll() is None, op.tail()
            assert time.monotonic() < deadline, op.tail()
            time.sleep(0.5)
        assert listening(metrics) == {"127.0.0.1"}, op.tail()
        assert listening(liveness) == {"127.0.0.1"}, op.tail()
        for port, path in ((metrics, "/metrics"), (liveness, "/healthz")):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
                assert resp.status == 200
    finally:
        op.stop()
        op.log.unlink(missing_ok=True)
