"""The Argo Rollouts comparison's step latency: from a canary ready at its target to the next
replica change of the same owner (pure logic over recorded watch events; nothing is run)."""

import pytest

from bench.rollouts_compare import Measured, percentile, request_kinds, step_latencies, work_table

pytestmark = pytest.mark.unit

NEW, OLD = "img:2", "img:1"


def ev(at, name, owner, spec, ready, image, kind="MODIFIED"):
    return (at, kind, [name, owner, str(spec), "" if ready is None else str(ready), image])


def test_each_step_is_timed_from_canary_readiness_to_the_next_replica_change():
    events = [
        ev(0.0, "stable", "a", 4, 4, OLD, "ADDED"),  # before the image change: not counted
        ev(1.0, "canary", "a", 1, None, NEW, "ADDED"),
        ev(1.2, "canary", "a", 1, 1, NEW),  # ready at its target: the clock starts
        ev(1.3, "canary", "a", 1, 1, NEW),  # a status-only update changes nothing
        ev(1.5, "stable", "a", 3, 4, OLD),  # the next step: 0.3 s
        ev(1.6, "stable", "a", 3, 3, OLD),  # stable ready: not a canary, no clock
        ev(1.7, "canary", "a", 4, 1, NEW),
        ev(2.0, "canary", "a", 4, 4, NEW),
        ev(2.1, "stable", "a", 3, 3, OLD, "DELETED"),  # deleting a live child is a change
    ]
    assert step_latencies(events, NEW, since=0.5) == pytest.approx([0.3, 0.1])


def test_owners_are_timed_apart_and_a_last_step_without_a_change_is_no_sample():
    events = [
        ev(0.0, "b-stable", "b", 4, 4, OLD),
        ev(1.0, "a-canary", "a", 1, 1, NEW),
        ev(1.1, "b-canary", "b", 2, 2, NEW),
        ev(1.4, "b-stable", "b", 2, 4, OLD),  # b's change answers b's clock only
        ev(2.0, "a-canary", "a", 1, 1, NEW),
    ]
    assert step_latencies(events, NEW, since=0.5) == pytest.approx([0.3])


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10.0
    assert percentile(values, 95) == 19.0
    assert percentile([0.4], 95) == 0.4


METRICS = """\
# HELP apiserver_request_total Counter of apiserver requests.
apiserver_request_total{resource="pods",subresource="",verb="POST"} 4
apiserver_request_total{resource="pods",subresource="binding",verb="POST"} 4
apiserver_request_total{resource="pods",subresource="",verb="POST"} 1
apiserver_request_total{resource="replicasets",subresource="status",verb="PUT"} 7e+00
apiserver_request_total{resource="",scope="",subresource="/healthz",verb="GET"} 30
"""


def test_requests_are_summed_by_verb_resource_and_subresource():
    assert request_kinds(METRICS) == {"POST pods": 5, "POST pods/binding": 4,
                                      "PUT replicasets/status": 7}


def measured(side, wall, plane, requests):
    return Measured(side, 2, [1.0, 2.0], requests.get("POST pods", 0), plane["controller"],
                    100.0, wall_seconds=wall, requests=requests, plane=plane)


def test_the_work_table_shows_each_process_the_busy_cpus_and_requests_per_rollout():
    argo = measured("argo-rollouts", 10.0, {"kube-apiserver": 6.0, "controller": 2.0},
                    {"POST pods": 8, "PUT replicasets": 6})
    paydeck = measured("paydeck", 20.0, {"kube-apiserver": 24.0, "controller": 8.0},
                       {"POST pods": 8, "PUT deployments/status": 10, "LIST deployments": 4})
    text = work_table(argo, paydeck, cpus=2)
    rows = [line for line in text.splitlines() if line.startswith("| ")][1:]
    assert rows[0] == "| kube-apiserver CPU-s | 6.0 | 24.0 | 4.00 |"
    assert rows[1] == "| controller CPU-s | 2.0 | 8.0 | 4.00 |"  # the controller comes last
    assert rows[2] == "| all CPU-s | 8.0 | 32.0 | 4.00 |"
    assert rows[3] == "| busy CPUs (all CPU-s / seconds) | 0.80 | 1.60 | 2.00 |"
    assert rows[4] == "| requests, all | 7.0 | 11.0 | 1.57 |"  # per rollout: N = 2
    assert rows[5:] == ["| requests, POST pods | 4.0 | 4.0 | 1.00 |",
                        "| requests, PUT deployments/status | 0.0 | 5.0 | n/a |",
                        "| requests, PUT replicasets | 3.0 | 0.0 | 0.00 |",
                        "| requests, LIST deployments | 0.0 | 2.0 | n/a |"]
    assert "takes 4 s for Argo Rollouts' side and 16 s for Paydeck's" in text


def test_each_rollout_gets_the_service_and_pdb_a_payment_service_gets():
    from payment_operator import api, builders

    from bench.rollouts_compare import payment_service, rollout, rollout_companions

    obj = payment_service("svc-0001", OLD)
    obj["metadata"].update(namespace="ns", uid="u")
    built = builders.supporting(api.parse(obj), builders.Context())
    ours = {m["kind"]: m.get("spec") for m in built}
    theirs = {m["kind"]: m["spec"] for m in rollout_companions("svc-0001")}
    assert ours["Service"]["ports"] == theirs["Service"]["ports"]
    assert {k: v for k, v in ours["PodDisruptionBudget"].items() if k != "selector"} == {
        k: v for k, v in theirs["PodDisruptionBudget"].items() if k != "selector"}
    pod_labels = rollout("svc-0001", NEW)["spec"]["template"]["metadata"]["labels"]
    assert theirs["Service"]["selector"] == pod_labels
    assert theirs["PodDisruptionBudget"]["selector"]["matchLabels"] == pod_labels
    container = rollout("svc-0001", NEW)["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"] for p in container["ports"]} == {p["targetPort"] for p in
                                                        theirs["Service"]["ports"]}
