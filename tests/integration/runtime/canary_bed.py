"""Real runtimes of two revisions scraped by a real Prometheus, and payment traffic for them.

:func:`revisions` starts one ``payment-runtime serve`` per revision, each labelling its series
with ``PAYMENT_REVISION`` as the operator configures a pod, lists their metrics ports as
Prometheus targets labelled with a ``namespace`` (as a ServiceMonitor would) and returns once
Prometheus has scraped every one.  :func:`traffic` sends one of them payments at a steady rate.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures import _process
from tests.fixtures.prometheus import SCRAPE_SECONDS, Prometheus
from tests.integration.runtime import processes
from tests.integration.runtime.helpers import Signer, headers, payment_body

#: Payments each revision is sent per second while traffic runs.
RATE = 4.0


@contextlib.contextmanager
def revisions(
    dsn: str,
    signer: Signer,
    directory: Path,
    prometheus: Prometheus,
    namespace: str,
    stripe_bases: Mapping[str, str],
    extra_env: Mapping[str, Mapping[str, str]] | None = None,
) -> Iterator[dict[str, processes.RuntimeProcess]]:
    """One runtime per revision of ``stripe_bases`` (revision -> Stripe API base), with
    ``extra_env[revision]`` added to its environment."""
    jwks = processes.write_jwks(signer, directory)
    runtimes: dict[str, processes.RuntimeProcess] = {}
    metrics_ports = []
    for revision, stripe in stripe_bases.items():
        port, metrics_port = _process.free_port(), _process.free_port()
        env = processes.runtime_env(
            dsn, stripe, jwks, port, metrics_port=metrics_port, revision=revision
        )
        env.update((extra_env or {}).get(revision, {}))
        runtimes[revision] = processes.RuntimeProcess(
            ["serve"], env, directory / f"runtime-{revision}.log", port
        )
        metrics_ports.append(metrics_port)
    with contextlib.ExitStack() as stack:
        for runtime in runtimes.values():
            stack.enter_context(processes.running(runtime))
        prometheus.set_targets([([f"127.0.0.1:{p}" for p in metrics_ports],
                                 {"namespace": namespace})])
        _process.wait_until(
            lambda: scraped(prometheus, namespace, runtimes) == dict.fromkeys(runtimes, 0.0),
            what="prometheus scraping every runtime", timeout=30, interval=SCRAPE_SECONDS / 4,
        )
        yield runtimes


def scraped(
    prometheus: Prometheus, namespace: str, runtimes: Mapping[str, Any]
) -> dict[str, float]:
    """Revision -> payment creations Prometheus has seen, for these runtimes."""
    result = prometheus.query(
        f'sum by (revision) (payment_requests_total{{namespace="{namespace}",'
        f'operation="create",revision=~"{"|".join(runtimes)}"}})'
    )
    return {r["metric"]["revision"]: float(r["value"][1]) for r in result}


def traffic(
    runtime: processes.RuntimeProcess,
    token: str,
    seconds: float | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Payments sent to ``runtime`` at :data:`RATE` per second, for ``seconds`` or until
    ``stop`` is set; returns how many were sent."""
    sent = 0
    started = time.monotonic()
    with httpx.Client(base_url=runtime.url, timeout=10) as client:
        while not (stop is not None and stop.is_set()) and (
            seconds is None or time.monotonic() - started < seconds
        ):
            client.post("/api/v1/payments", json=payment_body(), headers=headers(token))
            sent += 1
            time.sleep(max(0.0, sent / RATE - (time.monotonic() - started)))
    return sent
