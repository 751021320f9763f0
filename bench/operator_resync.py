"""Writes, time and memory of one idle resync over N PaymentServices, against a naive baseline.

The baseline is what many operators do on every resync: server-side apply every child and
patch the status unconditionally.  Both passes run in this process against the same real
local API server, one after the other; writes are counted by the API server itself
(``apiserver_request_total``).  Usage: ``python -m bench.operator_resync [N]``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from payment_operator import api, builders, reconcile
from payment_operator.coalesce import Coalescer
from payment_operator.kube import drift, resources
from payment_operator.kube.client import Kube
from payment_operator.topics import AdminClients

from hack import cluster as local_cluster
from hack.apiserver_metrics import operator_writes

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"


def _measure(lc: local_cluster.Cluster, fn: Callable[[], None]) -> tuple[int, float, int]:
    def metrics() -> str:
        return lc.kubectl("get", "--raw", "/metrics").stdout

    before = operator_writes(metrics())
    tracemalloc.start()
    started = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = operator_writes(metrics())
    after.subtract(before)
    return sum((+after).values()), elapsed, peak


def _objects(kube: Kube) -> list[dict[str, Any]]:
    return kube.list_objects(resources.PAYMENT_SERVICE, NAMESPACE)


def _ready(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def main(count: int = 100) -> None:
    state = Path(tempfile.mkdtemp(prefix="paydeck-bench-"))
    with local_cluster.running(state) as lc:
        crd = ROOT / "crds" / "paymentservices.paydeck.dev.yaml"
        lc.kubectl("apply", "--server-side", "-f", str(crd))
        local_cluster.wait_established(lc.kubectl, ["paymentservices.paydeck.dev"])
        lc.kubectl("create", "namespace", NAMESPACE)
        sample = yaml.safe_load((ROOT / "manifests" / "samples" / "minimal.yaml").read_text())
        docs = []
        for i in range(count):
            obj = json.loads(json.dumps(sample))
            obj["metadata"]["name"] = f"svc-{i:03d}"
            docs.append(obj)
        lc.kubectl("apply", "--server-side", "-n", NAMESPACE, "-f", "-",
                   input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
        kube = Kube.from_environment(str(lc.kubeconfig))
        ctx = builders.Context()
        coalescer: Coalescer[reconcile.Outcome] = Coalescer()
        kafka_admins = AdminClients(timeout=10.0)  # the minimal sample has no Kafka

        def ours() -> None:
            for obj in _objects(kube):
                meta = obj["metadata"]
                reconcile.reconcile(kube, coalescer, meta["namespace"], meta["name"], ctx,
                                    kafka_admins=kafka_admins, trigger="bench",
                                    prune_children=False)

        def naive() -> None:
            for obj in _objects(kube):
                ps = api.parse(obj)
                for manifest in builders.build_all(ps, ctx):
                    stamped = drift.with_hash(manifest)
                    kube.apply(stamped, resources.of(stamped), force=True)
                kube.patch_status(resources.PAYMENT_SERVICE, NAMESPACE, obj["metadata"]["name"],
                                  {"status": obj.get("status") or {}})

        # Converge: passes until every service is Ready (each migration Job runs first, then
        # its Deployment; kwok makes the pods ready), then two more to settle.
        deadline = time.monotonic() + 300
        while not all(_ready(obj) for obj in _objects(kube)):
            if time.monotonic() > deadline:
                raise TimeoutError("the PaymentServices never became Ready")
            ours()
            time.sleep(1)
        ours()
        ours()
        ours_writes, ours_time, ours_mem = _measure(lc, ours)
        naive_writes, naive_time, naive_mem = _measure(lc, naive)

    print(f"idle resync over {count} PaymentServices (same cluster, same run)")
    print(f"{'':14}{'writes':>8}{'writes/object':>15}{'seconds':>10}{'peak KiB':>10}")
    print(f"{'paydeck':14}{ours_writes:>8}{ours_writes / count:>15.2f}{ours_time:>10.2f}"
          f"{ours_mem // 1024:>10}")
    print(f"{'naive apply':14}{naive_writes:>8}{naive_writes / count:>15.2f}{naive_time:>10.2f}"
          f"{naive_mem // 1024:>10}")
    ratio = ours_writes / naive_writes if naive_writes else float("nan")
    print(f"ratios paydeck/naive: writes {ratio:.3f}, time {ours_time / naive_time:.2f}, "
          f"peak memory {ours_mem / max(naive_mem, 1):.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
