"""The operator at scale: N PaymentServices to Ready, beside the server-side-apply floor.

For each N (50, 200 and 1,000 by default), on fresh local control planes of one build (one
for the floor, another for the operator), measures:

- **floor**: ``kubectl apply --server-side`` of exactly the children the operator would
  create for N minimal PaymentServices (ServiceAccount, ConfigMap, Service, PDB, the migration
  Job and the Deployment), all at once with no operator, until every Job has succeeded and
  every Deployment is Available;
- **paydeck**: the real ``payment-operator`` process, N PaymentServices applied at once, until
  every one is ``Ready`` (it runs each Job first, then the Deployment: the rollout order);
- the operator's CPU-seconds per object and peak RSS (``/proc``), API requests per reconcile
  pass and, at the largest N of the run, writes during one idle resync of every object
  (``apiserver_request_total``; a minute of waiting for the drift timer, so not at each N).

Every figure is printed beside its floor from the same run, as a ratio. Then one separate run
under py-spy (``BENCH_PROFILE_N``) says where the operator's CPU goes. Usage:
``python -m bench.operator_scale [N ...]``; ``make bench`` runs it and writes the table to
``bench/results/operator_scale.md``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from payment_operator import api, builders

from bench import proc
from hack import cluster as local_cluster
from hack.apiserver_metrics import OPERATOR_RESOURCES, operator_writes
from hack.net import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_COUNTS = (50, 200, 1000)
#: After the measured runs, one more of BENCH_PROFILE_N objects (default 50; 0: none) with
#: py-spy sampling the operator: where its CPU goes, into ``operator_profile.md``. Its own
#: run, so the sampler's CPU never touches the figures above. BENCH_PROFILE=FILE keeps the
#: collapsed stacks (``python -m bench.runtime.profile FILE --operator`` summarises them).
PROFILE_N = int(os.environ.get("BENCH_PROFILE_N", "50"))
PROFILE = os.environ.get("BENCH_PROFILE")
#: The drift timer: the operator's default, so its passes during the run cost what they
#: cost users (reading the cache; one every ``drift_fresh_seconds`` reads afresh). The idle
#: measurement waits for one round of it over every object.
RESYNC_SECONDS = 60
_REQUESTS = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>[0-9.e+]+)$')


TRIGGERS = ("create", "resume", "update", "child", "requeue", "resync", "command")


@dataclass
class Result:
    count: int
    floor_seconds: float
    operator_seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    requests_per_pass: float
    idle_writes: int
    passes_per_object: float = 0.0
    #: CPU-seconds of each control-plane process (kube-apiserver, etcd ...) during the
    #: floor and during the operator's run: what the operator's requests cost the cluster.
    floor_plane: dict[str, float] = field(default_factory=dict)
    paydeck_plane: dict[str, float] = field(default_factory=dict)
    #: Reconcile passes until all were Ready, by trigger.
    passes: dict[str, float] = field(default_factory=dict)


def plane_cpu(lc: local_cluster.Cluster) -> dict[str, float]:
    """CPU-seconds so far of each process of the local control plane."""
    return {name: proc.cpu_seconds(pid) for name, pid in lc.processes.items()}


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


def _sample(count: int, namespace: str) -> list[dict[str, Any]]:
    sample = yaml.safe_load((ROOT / "manifests" / "samples" / "minimal.yaml").read_text())
    out = []
    for i in range(count):
        obj = json.loads(json.dumps(sample))
        obj["metadata"].update(name=f"svc-{i:04d}", namespace=namespace)
        out.append(obj)
    return out


def _children(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the operator creates for these PaymentServices, without owner references."""
    out = []
    for doc in docs:
        ps = api.parse({**doc, "metadata": {**doc["metadata"], "uid": "floor"}})
        plan = builders.Workloads(replicas={builders.revision(ps): ps.spec.replicas},
                                  migration=True)
        for child in builders.build_all(ps, builders.Context(), plan):
            child["metadata"].pop("ownerReferences", None)
            out.append(child)
    return out


def _apply_list(lc: local_cluster.Cluster, namespace: str, items: list[dict[str, Any]]) -> None:
    lc.kubectl("apply", "--server-side", "--field-manager=bench", "-n", namespace, "-f", "-",
               input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


def _wait(check: Any, timeout: float, what: str, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached after {timeout:.0f} s")


def _items(lc: local_cluster.Cluster, kind: str, namespace: str) -> list[dict[str, Any]]:
    out = lc.kubectl("get", kind, "-n", namespace, "-o", "json").stdout
    return list(json.loads(out)["items"])


def _true(obj: dict[str, Any], type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def floor(lc: local_cluster.Cluster, count: int) -> tuple[float, dict[str, float]]:
    """Seconds from the first SSA request until every Job succeeded and Deployment is up,
    and the control plane's CPU-seconds meanwhile."""
    namespace = f"floor-{count}"
    lc.kubectl("create", "namespace", namespace)
    children = _children(_sample(count, namespace))
    plane = plane_cpu(lc)
    started = time.perf_counter()
    for chunk in range(0, len(children), 600):  # one List per 600 children: kubectl's limits
        _apply_list(lc, namespace, children[chunk:chunk + 600])

    def done() -> bool:
        jobs = _items(lc, "jobs", namespace)
        deployments = _items(lc, "deployments", namespace)
        return (len(jobs) == count and all((j.get("status") or {}).get("succeeded") for j in jobs)
                and len(deployments) == count and all(_true(d, "Available") for d in deployments))

    _wait(done, 120 + 3 * count, "the floor's Jobs and Deployments")
    elapsed = time.perf_counter() - started
    return elapsed, spent(plane, plane_cpu(lc))


class Operator:
    """The real payment-operator process, with /proc read for its CPU time and peak RSS."""

    def __init__(self, kubeconfig: Path, resync_seconds: int = RESYNC_SECONDS) -> None:
        self.metrics_port = free_port()
        self.log = Path(tempfile.mkstemp(prefix="paydeck-bench-operator-", suffix=".log")[1])
        env = {**os.environ, "KUBECONFIG": str(kubeconfig),
               "PAYDECK_RESYNC_SECONDS": str(resync_seconds),
               "PAYDECK_METRICS_PORT": str(self.metrics_port),
               "PAYDECK_LIVENESS_PORT": str(free_port())}
        exe = Path(sys.executable).parent / "payment-operator"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([str(exe), "--standalone"], env=env, stdout=out,
                                         stderr=subprocess.STDOUT)

        self.spy: subprocess.Popen[bytes] | None = None

    def profile(self, output: str) -> None:
        """Sample the operator with py-spy (dev extra) into ``output`` until :meth:`stop`."""
        self.spy = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "--gil",
             "--format", "raw", "--rate", "100", "--output", output,
             "--pid", str(self.proc.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cpu_seconds(self) -> float:
        return proc.cpu_seconds(self.proc.pid)

    def peak_rss_mib(self) -> float:
        return proc.peak_rss_mib(self.proc.pid)

    def reconciles(self, trigger: str = "") -> float:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("paydeck_reconcile_total{") and trigger in line)

    def stop(self) -> None:
        if self.spy is not None:  # py-spy writes its file on SIGINT
            self.spy.send_signal(signal.SIGINT)
            self.spy.wait(timeout=60)
        proc.terminate(self.proc)


def _requests(metrics: str) -> int:
    """Every request (reads included) on the operator's kinds, any verb."""
    total = 0
    for line in metrics.splitlines():
        match = _REQUESTS.match(line)
        if match and re.search(r'resource="([^"]*)"', match["labels"]) and any(
                f'resource="{r}"' in match["labels"] for r in OPERATOR_RESOURCES):
            total += int(float(match["value"]))
    return total


@dataclass
class Run:
    """The operator's side of one measurement."""

    seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    requests_per_pass: float
    idle_writes: int
    passes: dict[str, float]
    plane: dict[str, float]


def with_operator(lc: local_cluster.Cluster, count: int, profile: Path | None = None,
                  idle: bool = True) -> Run:
    """The real operator, ``count`` PaymentServices applied at once, until all are Ready,
    then (``idle``) one idle resync of every object; with ``profile``, py-spy samples the
    operator into it and the idle resync is skipped."""
    namespace = f"paydeck-{count}"
    lc.kubectl("create", "namespace", namespace)
    for name in ("payments-stripe", "payments-db"):
        lc.kubectl("create", "secret", "generic", name, "-n", namespace,
                   "--from-literal=secret-key=x", "--from-literal=url=x")
    op = Operator(lc.kubeconfig)
    try:
        wait_serving(op)  # started: its imports and start-up are not counted below
        if profile is not None:  # the figures of a profiled run are not the benchmark's
            op.profile(str(profile))
        cpu_before = op.cpu_seconds()
        requests_before = _requests(_metrics(lc))
        passes_before = {t: op.reconciles(f'trigger="{t}"') for t in TRIGGERS}
        plane_before = plane_cpu(lc)
        started = time.perf_counter()
        docs = _sample(count, namespace)
        for chunk in range(0, len(docs), 500):
            _apply_list(lc, namespace, docs[chunk:chunk + 500])

        def ready() -> bool:
            items = _items(lc, "paymentservices", namespace)
            return len(items) == count and all(_true(i, "Ready") for i in items)

        _wait(ready, 120 + 2 * count, "every PaymentService Ready")
        elapsed = time.perf_counter() - started
        plane = spent(plane_before, plane_cpu(lc))
        cpu = op.cpu_seconds() - cpu_before
        passes = {t: op.reconciles(f'trigger="{t}"') - passes_before[t] for t in TRIGGERS}
        per_pass = (_requests(_metrics(lc)) - requests_before) / max(sum(passes.values()), 1)
        writes = idle_writes(lc, op, count) if idle and profile is None else -1
        return Run(elapsed, cpu, op.peak_rss_mib(), per_pass, writes, passes, plane)
    finally:
        op.stop()


def wait_serving(op: Operator) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            op.reconciles()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the operator never served its metrics; log: {op.log}")


def _metrics(lc: local_cluster.Cluster) -> str:
    return lc.kubectl("get", "--raw", "/metrics").stdout


def idle_writes(lc: local_cluster.Cluster, op: Operator, count: int) -> int:
    """Writes the API server served while the drift timer passed over every object once."""
    time.sleep(5)  # the last status writes and child events settle
    before: Counter[str] = operator_writes(_metrics(lc))
    resyncs = op.reconciles('trigger="resync"')
    _wait(lambda: op.reconciles('trigger="resync"') - resyncs >= count, RESYNC_SECONDS + 120,
          "one idle resync of every object", interval=2)
    after = operator_writes(_metrics(lc))
    after.subtract(before)
    if +after:
        print(f"   writes during the idle resync: {dict(+after)}", flush=True)
    return sum((+after).values())


def run(count: int, idle: bool = True) -> Result:
    """The floor, then the operator, each on a fresh control plane of the same build (a
    clean-up of the floor's objects would share the operator's CPU, and its DELETEs would
    count as writes in the idle resync); ``idle``: measure one idle resync too."""
    with _fresh_cluster("paydeck-bench-floor-") as lc:
        floor_seconds, floor_plane = floor(lc, count)
    with _fresh_cluster("paydeck-bench-scale-") as lc:
        ran = with_operator(lc, count, idle=idle)
    return Result(count, floor_seconds, ran.seconds, ran.cpu_seconds, ran.peak_rss_mib,
                  ran.requests_per_pass, ran.idle_writes, sum(ran.passes.values()) / count,
                  floor_plane, ran.plane, ran.passes)


@contextmanager
def _fresh_cluster(prefix: str) -> Iterator[local_cluster.Cluster]:
    """A new local control plane with the PaymentService CRD established."""
    with local_cluster.running(Path(tempfile.mkdtemp(prefix=prefix))) as lc:
        crd = ROOT / "crds" / "paymentservices.paydeck.dev.yaml"
        lc.kubectl("apply", "--server-side", "-f", str(crd))
        local_cluster.wait_established(lc.kubectl, ["paymentservices.paydeck.dev"])
        yield lc


def table(results: list[Result]) -> str:
    lines = [
        "| N | floor (SSA, no operator) s | paydeck s | ratio | CPU-s/object | peak RSS MiB "
        "| API requests/pass | passes/object | writes in an idle resync |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.count} | {r.floor_seconds:.1f} | {r.operator_seconds:.1f} | "
            f"{r.operator_seconds / r.floor_seconds:.2f} | {r.cpu_seconds / r.count:.3f} | "
            f"{r.peak_rss_mib:.0f} | {r.requests_per_pass:.1f} | {r.passes_per_object:.1f} | "
            f"{r.idle_writes if r.idle_writes >= 0 else 'not measured'} |")
    return "\n".join(lines)


def plane_table(results: list[Result]) -> str:
    """Where the time goes: the control plane's CPU during the floor and the operator's run,
    and the operator's passes by trigger."""
    names = sorted({n for r in results for n in r.floor_plane} | {"paydeck-operator"})
    lines = [
        "| N | process | CPU-s, floor | CPU-s, paydeck | paydeck / floor |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in results:
        for name in names:
            floor_cpu = r.floor_plane.get(name, 0.0)
            ours = r.cpu_seconds if name == "paydeck-operator" else r.paydeck_plane.get(name, 0.0)
            ratio = f"{ours / floor_cpu:.2f}" if floor_cpu else "n/a"
            lines.append(f"| {r.count} | {name} | {floor_cpu:.1f} | {ours:.1f} | {ratio} |")
        total_floor = sum(r.floor_plane.values())
        total = sum(r.paydeck_plane.values()) + r.cpu_seconds
        wall = f"{total / r.operator_seconds:.2f} of {os.cpu_count()} CPUs"
        lines.append(f"| {r.count} | all (busy, paydeck run: {wall}) | {total_floor:.1f} | "
                     f"{total:.1f} | {total / total_floor:.2f} |")
    passes = "; ".join(
        f"N = {r.count}: " + ", ".join(f"{t} {n / r.count:.2f}" for t, n in r.passes.items() if n)
        for r in results)
    return "\n".join(lines) + f"\n\nPasses per object by trigger until all were Ready: {passes}.\n"


def profile_run(count: int, output: Path) -> str:
    """One profiled run of ``count`` objects (no floor, no idle resync): the markdown."""
    from bench.runtime.profile import OPERATOR_BUCKETS, summarise

    with _fresh_cluster("paydeck-bench-profile-") as lc:
        ran = with_operator(lc, count, profile=output)
        seconds, cpu = ran.seconds, ran.cpu_seconds
    rows = summarise(output.read_text(), OPERATOR_BUCKETS)
    lines = [
        f"## Where the operator's CPU goes ({time.strftime('%Y-%m-%d')}, py-spy, N = {count})",
        "",
        f"A separate run, sampled at 100 Hz from the apply until all {count} were Ready "
        f"({seconds:.1f} s, {cpu / count:.3f} CPU-s per object while sampled). Each sample is "
        "charged to the innermost frame's library; `payment_operator` rows are our code.",
        "",
        "| share | samples | where |",
        "|---:|---:|---|",
        *(f"| {share:.1%} | {n} | {name} |" for name, n, share in rows),
    ]
    return "\n".join(lines) + "\n"


def main(counts: tuple[int, ...] = DEFAULT_COUNTS) -> None:
    results = []
    for count in counts:
        print(f"-- {count} PaymentServices", flush=True)
        results.append(run(count, idle=count == max(counts)))
        print(table(results[-1:]), plane_table(results[-1:]), sep="\n", flush=True)
    report = (f"## Operator at scale ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs)\n\n"
              f"{table(results)}\n\n### Where the time goes\n\n{plane_table(results)}")
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "operator_scale.md").write_text(report)
    if PROFILE_N > 0:
        print(f"-- profile: {PROFILE_N} PaymentServices under py-spy", flush=True)
        output = Path(PROFILE) if PROFILE else Path(tempfile.mkdtemp()) / "operator.collapsed"
        profile = profile_run(PROFILE_N, output)
        print(profile)
        (RESULTS / "operator_profile.md").write_text(profile)


if __name__ == "__main__":
    main(tuple(int(a) for a in sys.argv[1:]) or DEFAULT_COUNTS)
