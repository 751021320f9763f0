"""Paydeck beside Argo Rollouts: the same basic canary rolled out both ways, each on a fresh
control plane of the same build.

For each N (1 and 200 by default) N Argo Rollouts and N PaymentServices of the same shape
(``REPLICAS`` pods, steps setWeight 10 → 50 → 100 with no pauses and no analysis, one pod of
surge, none unavailable) are created, each side with only its own controller running: Argo
Rollouts' ``rollouts-controller`` (built by :mod:`hack.argo_rollouts`, ``--leader-elect=false``)
and the real ``payment-operator --standalone``.  Then the image of every object changes at once
and the bench measures, per side:

- **promote**: seconds from the image change until the object is promoted (Rollout:
  ``status.stableRS == status.currentPodHash`` of the new template and phase Healthy;
  PaymentService: ``status.stableImage`` is the new image and phase Healthy), p50 and max;
- **pods/rollout**: pod creations the API server served during the rollouts
  (``apiserver_request_total`` POST pods), divided by N;
- **CPU-s**: the controller's CPU-seconds during the rollouts and its peak RSS (``/proc``);
- **step latency**: from a canary ReplicaSet / Deployment reaching its replica target ready to
  the controller's next replica change of that object (the next step, or the next pace of one
  step), p50 and p95 over every step of every rollout; read from a watch on the children.

The PaymentServices run without migrations: a migration Job is no part of an Argo Rollout.
Paydeck also writes a Service, a PodDisruptionBudget and the other supporting children that
Argo leaves to the user; each Rollout gets the same Service and PodDisruptionBudget beside it
(:func:`rollout_companions`, before the measured rollout), as its user would write them: their
EndpointSlices and status follow the pods on both sides.  Usage: ``python -m
bench.rollouts_compare [N ...]``; ``make bench`` runs it and writes
``bench/results/rollouts_compare.md``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import proc
from bench.operator_scale import RESULTS, ROOT, Operator, plane_cpu, spent, wait_serving
from hack import argo_rollouts, tools
from hack import cluster as local_cluster
from hack.net import free_port

DEFAULT_COUNTS = (1, 200)
REPLICAS = 4
STEPS = (10, 50, 100)
IMAGE_1 = "registry.example/payment-runtime:1"
IMAGE_2 = "registry.example/payment-runtime:2"
#: Seconds (plus 5 a rollout) the rollouts may take before the bench reports what it has.
ROLLOUT_TIMEOUT = 120
#: kwok nodes of 110 pods each: N=200 objects of 4 (+1 surge) pods per side, with room.
NODES = 20
_REQUESTS = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>[0-9.e+]+)$')
_LABEL = re.compile(r'(\w+)="([^"]*)"')
#: Request kinds shown in the control plane's breakdown (the most requested of both sides).
TOP_REQUESTS = 12


# -- the objects ---------------------------------------------------------------------------------

#: The payment container's ports, named as the PaymentService's pods name them.
PORTS = ({"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090})


def rollout(name: str, image: str) -> dict[str, Any]:
    labels = {"app": name}
    container = {"name": "payment-runtime", "image": image, "ports": list(PORTS)}
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
            "strategy": {"canary": {"maxSurge": 1, "maxUnavailable": 0,
                                    "steps": [{"setWeight": w} for w in STEPS]}},
        },
    }


def rollout_companions(name: str) -> list[dict[str, Any]]:
    """What a Rollout's user writes beside it and a PaymentService's operator writes for it,
    of the children whose status follows the pods: a Service (its EndpointSlices change with
    every pod) and a PodDisruptionBudget (its status too), as Paydeck's builders make them."""
    labels = {"app": name}
    ports = [{"name": p["name"], "port": 80 if p["name"] == "http" else p["containerPort"],
              "targetPort": p["name"], "protocol": "TCP"} for p in PORTS]
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
         "spec": {"type": "ClusterIP", "selector": labels, "ports": ports}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
         "spec": {"selector": {"matchLabels": labels}, "maxUnavailable": 1,
                  "unhealthyPodEvictionPolicy": "AlwaysAllow"}},
    ]


def payment_service(name: str, image: str) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((ROOT / "manifests" / "samples" / "minimal.yaml")
                                         .read_text())
    obj["metadata"] = {"name": name}
    obj["spec"]["database"]["migrations"] = {"enabled": False}
    obj["spec"].update(
        image=image, replicas=REPLICAS,
        rollout={"canary": {"maxSurge": 1, "steps": [{"setWeight": w} for w in STEPS]}})
    return obj


# -- watching ------------------------------------------------------------------------------------

class Watch:
    """``kubectl get --watch`` of one kind in one namespace, each event timestamped on arrival.

    ``columns`` are jsonpath expressions below ``.object``; every event is recorded as
    ``(monotonic seconds, event type, [column values])``.
    """

    def __init__(self, lc: local_cluster.Cluster, kind: str, namespace: str,
                 columns: tuple[str, ...]) -> None:
        template = "{.type}" + "".join(f"|{{.object.{c}}}" for c in columns) + "{\"\\n\"}"
        self.events: list[tuple[float, str, list[str]]] = []
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [str(tools.binary("kubectl")), f"--kubeconfig={lc.kubeconfig}", "get", kind,
             "-n", namespace, "--watch", "--output-watch-events", "-o", f"jsonpath={template}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            now = time.monotonic()
            kind, *values = line.rstrip("\n").split("|")
            with self._lock:
                self.events.append((now, kind, values))

    def snapshot(self) -> list[tuple[float, str, list[str]]]:
        with self._lock:
            return list(self.events)

    def latest(self) -> dict[str, list[str]]:
        """The last state seen of each object, by its first column (its name)."""
        out: dict[str, list[str]] = {}
        for _, kind, values in self.snapshot():
            if kind == "DELETED":
                out.pop(values[0], None)
            else:
                out[values[0]] = values
        return out

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(10)


# -- the two sides -------------------------------------------------------------------------------

class ArgoController:
    """Argo Rollouts' controller process, with the admin kubeconfig and no leader election."""

    def __init__(self, kubeconfig: Path) -> None:
        self.log = Path(tempfile.mkstemp(prefix="paydeck-bench-argo-", suffix=".log")[1])
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(argo_rollouts.binary()), f"--kubeconfig={kubeconfig}",
                 "--leader-elect=false", f"--metricsPort={free_port()}",
                 f"--healthzPort={free_port()}", "--loglevel=warn"],
                stdout=out, stderr=subprocess.STDOUT)

    def cpu_seconds(self) -> float:
        return proc.cpu_seconds(self.proc.pid)

    def peak_rss_mib(self) -> float:
        return proc.peak_rss_mib(self.proc.pid)

    def stop(self) -> None:
        proc.terminate(self.proc)


@dataclass(frozen=True)
class Side:
    """One way of rolling out: its objects, their children and when they count as done."""

    name: str
    kind: str
    child_kind: str
    #: jsonpath columns of the object (name first) and the predicate "promoted to this image".
    columns: tuple[str, ...]
    make: Callable[[str, str], dict[str, Any]]
    healthy: Callable[[list[str], str], bool]
    start: Callable[[local_cluster.Cluster, str], Any]
    #: Objects created once beside each object, before the rollouts are measured.
    companions: Callable[[str], list[dict[str, Any]]] = lambda _name: []


def _argo_healthy(values: list[str], image: str) -> bool:
    """Healthy, stable is the current template, and the status is of this spec's generation
    (the template's image changes at once; ``status`` only once the controller has seen it)."""
    _, phase, stable, current, current_image, generation, observed = values
    return (phase == "Healthy" and bool(stable) and stable == current
            and current_image == image and generation == observed)


def _paydeck_healthy(values: list[str], image: str) -> bool:
    _, phase, stable_image = values
    return phase == "Healthy" and stable_image == image


def _start_argo(lc: local_cluster.Cluster, namespace: str) -> ArgoController:
    return ArgoController(lc.kubeconfig)


def _start_paydeck(lc: local_cluster.Cluster, namespace: str) -> Operator:
    for name in ("payments-stripe", "payments-db"):
        lc.kubectl("create", "secret", "generic", name, "-n", namespace,
                   "--from-literal=secret-key=x", "--from-literal=url=x")
    op = Operator(lc.kubeconfig, resync_seconds=3600)  # no drift pass during the run
    wait_serving(op)
    return op


# The Rollout's current image is read from its template: currentPodHash alone does not say
# which template it hashes; observedGeneration says the status is about that template.
ARGO = Side("argo-rollouts", "rollouts.argoproj.io", "replicasets",
            ("metadata.name", "status.phase", "status.stableRS", "status.currentPodHash",
             "spec.template.spec.containers[0].image", "metadata.generation",
             "status.observedGeneration"),
            rollout, _argo_healthy, _start_argo, rollout_companions)
PAYDECK = Side("paydeck", "paymentservices.paydeck.dev", "deployments",
               ("metadata.name", "status.phase", "status.stableImage"),
               payment_service, _paydeck_healthy, _start_paydeck)
CHILD_COLUMNS = ("metadata.name", "metadata.ownerReferences[0].name", "spec.replicas",
                 "status.readyReplicas", "spec.template.spec.containers[0].image")


# -- measuring -----------------------------------------------------------------------------------

@dataclass
class Measured:
    side: str
    count: int
    promote_seconds: list[float]
    pods_created: int
    cpu_seconds: float
    peak_rss_mib: float
    step_latencies: list[float] = field(default_factory=list)
    #: Seconds from the image change until every object was promoted (or the bench gave up).
    wall_seconds: float = 0.0
    #: The API server's requests during the rollouts, by kind (``"PUT replicasets/status"``).
    requests: dict[str, int] = field(default_factory=dict)
    #: CPU-seconds of each control-plane process during the rollouts.
    plane: dict[str, float] = field(default_factory=dict)
    #: Every watch event of the first object and its children, seconds after the image change.
    timeline: list[str] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def step_latencies(events: list[tuple[float, str, list[str]]], image: str,
                   since: float) -> list[float]:
    """Seconds from each canary child reaching its target ready to its owner's next replica change.

    ``events`` are the children's watch events (columns ``CHILD_COLUMNS``).  A replica change
    is a child created, deleted or given a new ``spec.replicas``; a canary child of ``image``
    whose ready count reaches its ``spec.replicas`` (above 0) starts the clock of its owner.
    """
    state: dict[str, tuple[int, int]] = {}
    pending: dict[str, float] = {}
    out: list[float] = []
    for at, kind, (name, owner, spec_s, ready_s, child_image) in events:
        spec, ready = int(spec_s or 0), int(ready_s or 0)
        before = state.get(name)
        if kind == "DELETED":
            state.pop(name, None)
            changed = bool(before and before[0])
        else:
            state[name] = (spec, ready)
            changed = spec > 0 if before is None else before[0] != spec
        if at < since:
            continue
        if changed and owner in pending:
            out.append(at - pending.pop(owner))
        was_ready = before is not None and before[0] == spec and before[1] >= spec
        if (kind != "DELETED" and child_image == image and spec > 0 and ready >= spec
                and not was_ready):
            pending[owner] = at
    return out


def request_kinds(metrics: str) -> Counter[str]:
    """``apiserver_request_total`` summed by verb and resource (pure): ``"POST pods"``,
    ``"PUT replicasets/status"``; requests without a resource (``/healthz``) are left out."""
    out: Counter[str] = Counter()
    for line in metrics.splitlines():
        match = _REQUESTS.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        if not labels.get("resource"):
            continue
        sub = labels.get("subresource")
        kind = f"{labels.get('verb')} {labels['resource']}" + (f"/{sub}" if sub else "")
        out[kind] += int(float(match["value"]))
    return out


def _requests(lc: local_cluster.Cluster) -> Counter[str]:
    return request_kinds(lc.kubectl("get", "--raw", "/metrics").stdout)


def _wait(check: Callable[[], bool], timeout: float, what: str, must: bool = True) -> bool:
    """Whether ``check`` held within ``timeout``; raises instead if it ``must``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    if must:
        raise TimeoutError(f"{what} not reached after {timeout:.0f} s")
    print(f"{what} not reached after {timeout:.0f} s: reporting what was", flush=True)
    return False


def _apply(lc: local_cluster.Cluster, namespace: str, items: list[dict[str, Any]]) -> None:
    for chunk in range(0, len(items), 500):
        lc.kubectl("apply", "--server-side", "--field-manager=bench", "-n", namespace, "-f", "-",
                   input=json.dumps({"apiVersion": "v1", "kind": "List",
                                     "items": items[chunk:chunk + 500]}))


@contextmanager
def _watching(lc: local_cluster.Cluster, side: Side, namespace: str) -> Iterator[tuple[Watch,
                                                                                        Watch]]:
    objects = Watch(lc, side.kind, namespace, side.columns)
    children = Watch(lc, side.child_kind, namespace, CHILD_COLUMNS)
    try:
        yield objects, children
    finally:
        objects.stop()
        children.stop()


def measure(lc: local_cluster.Cluster, side: Side, count: int) -> Measured:
    """Create ``count`` objects of ``side`` at IMAGE_1, then roll all of them to IMAGE_2."""
    namespace = f"{side.name}-{count}"
    lc.kubectl("create", "namespace", namespace)
    controller = side.start(lc, namespace)
    names = [f"svc-{i:04d}" for i in range(count)]
    try:
        with _watching(lc, side, namespace) as (objects, children):
            _apply(lc, namespace, [obj for n in names
                                   for obj in (side.make(n, IMAGE_1), *side.companions(n))])

            def all_at(image: str) -> bool:
                latest = objects.latest()
                return all(n in latest and side.healthy(latest[n], image) for n in names)

            _wait(lambda: all_at(IMAGE_1), 120 + 2 * count, f"{side.name}: every object Healthy")
            time.sleep(2)  # the last status writes settle before the counters are read
            requests_before, cpu_before = _requests(lc), controller.cpu_seconds()
            plane_before = plane_cpu(lc)
            started = time.monotonic()
            _apply(lc, namespace, [side.make(n, IMAGE_2) for n in names])
            # Not reaching it is a result too: the table counts the objects promoted in time.
            _wait(lambda: all_at(IMAGE_2), ROLLOUT_TIMEOUT + 5 * count,
                  f"{side.name}: every object promoted", must=False)
            wall = time.monotonic() - started
            cpu = controller.cpu_seconds() - cpu_before
            plane = spent(plane_before, plane_cpu(lc))
            time.sleep(1)  # pod creations of the last step reach the counter
            requests = _requests(lc)
            requests.subtract(requests_before)
            promoted: dict[str, float] = {}
            for at, kind, values in objects.snapshot():
                if at >= started and kind != "DELETED" and side.healthy(values, IMAGE_2):
                    promoted.setdefault(values[0], at - started)
            steps = step_latencies(children.snapshot(), IMAGE_2, started)
            timeline = [f"{at - started:7.3f} {kind:8} {' '.join(values)}"
                        for at, kind, values in sorted(objects.snapshot() + children.snapshot())
                        if at >= started and names[0] in values[:2]]
        return Measured(side.name, count, sorted(promoted.values()), requests["POST pods"], cpu,
                        controller.peak_rss_mib(), steps, timeline=timeline, wall_seconds=wall,
                        requests=dict(+requests), plane={**plane, "controller": cpu})
    finally:
        controller.stop()
        lc.kubectl("delete", "namespace", namespace, "--wait=false")


def _add_nodes(lc: local_cluster.Cluster) -> None:
    nodes = [local_cluster._node_manifest(i) for i in range(local_cluster.NODE_COUNT, NODES)]
    lc.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                     "items": nodes}))
    lc.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=120s")


@contextmanager
def _fresh_cluster() -> Iterator[local_cluster.Cluster]:
    """A new local control plane with the extra kwok nodes and both sides' CRDs."""
    with local_cluster.running(Path(tempfile.mkdtemp(prefix="paydeck-bench-argo-"))) as lc:
        _add_nodes(lc)
        crds = [ROOT / "crds" / "paymentservices.paydeck.dev.yaml", *argo_rollouts.crd_paths()]
        for crd in crds:
            lc.kubectl("apply", "--server-side", "-f", str(crd))
        local_cluster.wait_established(lc.kubectl, ["paymentservices.paydeck.dev",
                                                    "rollouts.argoproj.io"])
        lc.kubectl("create", "namespace", "argo-rollouts")  # its home (config map, lease)
        yield lc


def run(counts: tuple[int, ...]) -> list[tuple[Measured, Measured]]:
    """Each side of each N on a fresh control plane of the same build: the clean-up of one
    side's objects (a namespace of N objects and their pods, going away in the background)
    would otherwise share the cores with the next side's run."""
    argo_rollouts.ensure()
    results = []
    for count in counts:
        print(f"-- N = {count}", flush=True)
        with _fresh_cluster() as lc:
            argo = measure(lc, ARGO, count)
        print(f"{argo.side}: {len(argo.promote_seconds)}/{count} promoted, "
              f"max {max(argo.promote_seconds, default=float('nan')):.2f} s", flush=True)
        with _fresh_cluster() as lc:
            pair = (argo, measure(lc, PAYDECK, count))
        print(table([pair]), flush=True)
        results.append(pair)
    return results


# -- reporting -----------------------------------------------------------------------------------

def _ratio(paydeck: float, argo: float) -> str:
    return f"{paydeck / argo:.2f}" if argo else "n/a"


def table(results: list[tuple[Measured, Measured]]) -> str:
    lines = ["| N | figure | Argo Rollouts | Paydeck | Paydeck / Argo |",
             "|---:|---|---:|---:|---:|"]
    for argo, paydeck in results:
        rows = [
            ("promote p50 s", percentile(argo.promote_seconds, 50),
             percentile(paydeck.promote_seconds, 50), "{:.2f}"),
            ("promoted in time", len(argo.promote_seconds), len(paydeck.promote_seconds),
             "{:.0f}"),
            ("promote max s", max(argo.promote_seconds, default=float("nan")),
             max(paydeck.promote_seconds, default=float("nan")), "{:.2f}"),
            ("pods created / rollout", argo.pods_created / argo.count,
             paydeck.pods_created / paydeck.count, "{:.1f}"),
            ("controller CPU-s (rollouts)", argo.cpu_seconds, paydeck.cpu_seconds, "{:.2f}"),
            ("controller peak RSS MiB", argo.peak_rss_mib, paydeck.peak_rss_mib, "{:.0f}"),
            ("step latency p50 s", percentile(argo.step_latencies, 50),
             percentile(paydeck.step_latencies, 50), "{:.3f}"),
            ("step latency p95 s", percentile(argo.step_latencies, 95),
             percentile(paydeck.step_latencies, 95), "{:.3f}"),
            ("step samples", len(argo.step_latencies), len(paydeck.step_latencies), "{:.0f}"),
        ]
        for label, a, p, fmt in rows:
            lines.append(f"| {argo.count} | {label} | {fmt.format(a)} | {fmt.format(p)} | "
                         f"{_ratio(p, a)} |")
    return "\n".join(lines)


def work_table(argo: Measured, paydeck: Measured, cpus: int) -> str:
    """Where the control plane's work of one N went, both sides (pure): each process's
    CPU-seconds, the CPUs they kept busy, and the API requests per rollout by kind (the
    most requested :data:`TOP_REQUESTS` of both sides), then what that means for the time."""
    def row(label: str, a: float, p: float, fmt: str) -> str:
        return f"| {label} | {fmt.format(a)} | {fmt.format(p)} | {_ratio(p, a)} |"

    lines = [f"### N = {argo.count}: where the control plane's work went (from the image "
             "change until every object was promoted)", "",
             "| process, or API requests per rollout | Argo Rollouts | Paydeck | Paydeck / Argo |",
             "|---|---:|---:|---:|"]
    names = sorted(set(argo.plane) | set(paydeck.plane), key=lambda n: (n == "controller", n))
    for name in names:
        lines.append(row(f"{name} CPU-s", argo.plane.get(name, 0.0),
                         paydeck.plane.get(name, 0.0), "{:.1f}"))
    total_a, total_p = sum(argo.plane.values()), sum(paydeck.plane.values())
    lines.append(row("all CPU-s", total_a, total_p, "{:.1f}"))
    lines.append(row("busy CPUs (all CPU-s / seconds)", total_a / max(argo.wall_seconds, 1e-9),
                     total_p / max(paydeck.wall_seconds, 1e-9), "{:.2f}"))
    both: Counter[str] = Counter(argo.requests)
    both.update(paydeck.requests)
    count = argo.count
    lines.append(row("requests, all", sum(argo.requests.values()) / count,
                     sum(paydeck.requests.values()) / count, "{:.1f}"))
    for kind, _ in both.most_common(TOP_REQUESTS):
        lines.append(row(f"requests, {kind}", argo.requests.get(kind, 0) / count,
                         paydeck.requests.get(kind, 0) / count, "{:.1f}"))
    lines += ["", f"On {cpus} CPUs the control plane's work alone (all CPU-s / {cpus}) takes "
              f"{total_a / cpus:.0f} s for Argo Rollouts' side and {total_p / cpus:.0f} s for "
              f"Paydeck's; their last objects were promoted after {argo.wall_seconds:.0f} s and "
              f"{paydeck.wall_seconds:.0f} s. Where both sides keep the CPUs busy, the time "
              "follows the work: the requests per rollout above, and what each costs the API "
              "server, etcd and the controllers."]
    return "\n".join(lines)


def main(counts: tuple[int, ...] = DEFAULT_COUNTS) -> None:
    results = run(counts)
    report = (f"## Paydeck beside Argo Rollouts {argo_rollouts.VERSION} "
              f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs)\n\n"
              f"{REPLICAS} replicas, steps {' → '.join(map(str, STEPS))}, maxSurge 1, "
              "no pauses, no analysis, no migrations.\n\n"
              f"{table(results)}\n")
    for argo, paydeck in results[:1]:  # the first N: where each side spends its time
        for measured in (argo, paydeck):
            report += (f"\n### {measured.side}, N = {measured.count}: watch events of the first "
                       "object and its children (seconds after the image change)\n\n```\n"
                       + "\n".join(measured.timeline) + "\n```\n")
    for argo, paydeck in results[-1:]:  # the largest N: where the control plane's work goes
        report += "\n" + work_table(argo, paydeck, os.cpu_count() or 1) + "\n"
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rollouts_compare.md").write_text(report)


if __name__ == "__main__":
    main(tuple(int(a) for a in sys.argv[1:]) or DEFAULT_COUNTS)
