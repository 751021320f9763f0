"""Canary rollouts on the real API server with kwok: steps, migrations, analysis, commands.

Pod, Job and replica counts are read from the API server.  kwok completes Job pods at once,
fails those of ``hack.tools.KWOK_FAIL_IMAGE`` and completes those of ``KWOK_SLOW_IMAGE``
after ``KWOK_SLOW_MILLISECONDS``.
"""

from __future__ import annotations

import json
import signal
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hack.tools import KWOK_FAIL_IMAGE, KWOK_SLOW_IMAGE
from tests.e2e import secrets
from tests.e2e.conftest import condition, get_json, wait_for
from tests.unit.packaging import lua

pytestmark = pytest.mark.e2e

NAME = "pay"
IMAGE_1 = "registry.example/payment-runtime:1"
IMAGE_2 = "registry.example/payment-runtime:2"


def service(image=IMAGE_1, steps=None, replicas=4, surge=1, analysis=None, deadline=600):
    spec = {
        "image": image,
        "replicas": replicas,
        "stripe": {"secretKey": {"secretRef": {"name": "s", "key": "k"}}},
        "database": {"url": {"secretRef": {"name": "d", "key": "u"}}},
        "networkPolicy": {"enabled": False},
        "rollout": {"progressDeadlineSeconds": deadline},
    }
    if steps is not None:
        spec["rollout"]["canary"] = {"steps": steps, "maxSurge": surge}
        if analysis is not None:
            spec["rollout"]["canary"]["analysis"] = analysis
    return {"apiVersion": "paydeck.dev/v1alpha1", "kind": "PaymentService",
            "metadata": {"name": NAME}, "spec": spec}


def apply(cluster, namespace, obj):
    secrets.create_for(cluster, namespace, obj)
    cluster.kubectl("apply", "--server-side", "--field-manager=gitops", "-n", namespace,
                    "-f", "-", input=json.dumps(obj))


def set_image(cluster, namespace, image):
    cluster.kubectl("patch", "paysvc", NAME, "-n", namespace, "--type=merge",
                    "-p", json.dumps({"spec": {"image": image}}))


def command(cluster, namespace, action):
    """Write status.command as the Argo CD actions do; one second after the last handled one
    at least (the operator handles a command only when its requestedAt is newer)."""
    now = datetime.now(UTC).replace(microsecond=0)
    last = (ps(cluster, namespace).get("status") or {}).get("lastHandledCommandAt")
    if last:
        now = max(now, datetime.fromisoformat(last.replace("Z", "+00:00")) + timedelta(seconds=1))
    when = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"status": {"command": {"action": action, "requestedAt": when,
                                    "requestedBy": "e2e"}}}
    cluster.kubectl("patch", "paysvc", NAME, "-n", namespace, "--subresource=status",
                    "--type=merge", "-p", json.dumps(patch))


def ps(cluster, namespace):
    return get_json(cluster, "paysvc", NAME, "-n", namespace)


def deployments(cluster, namespace):
    """{image: (spec replicas, ready)} of the service's revision Deployments."""
    items = get_json(cluster, "deployments", "-n", namespace,
                     "-l", f"app.kubernetes.io/instance={NAME}")["items"]
    return {d["spec"]["template"]["spec"]["containers"][0]["image"]:
            (d["spec"]["replicas"], d.get("status", {}).get("readyReplicas", 0)) for d in items}


def pods(cluster, namespace, image):
    items = get_json(cluster, "pods", "-n", namespace,
                     "-l", f"app.kubernetes.io/instance={NAME}")["items"]
    return [p for p in items if p["spec"]["containers"][0]["image"] == image]


def jobs(cluster, namespace):
    return get_json(cluster, "jobs", "-n", namespace)["items"]


def healthy(cluster, namespace, image):
    def check():
        obj = ps(cluster, namespace)
        status = (obj or {}).get("status", {})
        ok = (status.get("phase") == "Healthy" and status.get("stableImage") == image
              and status.get("observedGeneration") == obj["metadata"]["generation"])
        return obj if ok else None
    return check


def phase_is(cluster, namespace, phase):
    def check():
        obj = ps(cluster, namespace)
        return obj if (obj or {}).get("status", {}).get("phase") == phase else None
    return check


def events(cluster, namespace):
    return cluster.kubectl("get", "events", "-n", namespace,
                           f"--field-selector=involvedObject.name={NAME}",
                           "-o", "jsonpath={.items[*].reason}").stdout.split()


def messages(cluster, namespace, reason):
    items = get_json(cluster, "events", "-n", namespace,
                     f"--field-selector=involvedObject.name={NAME},reason={reason}")["items"]
    return [e["message"] for e in items]


def start(cluster, namespace, operator, **kw):
    apply(cluster, namespace, service(**kw))
    obj = wait_for(healthy(cluster, namespace, kw.get("image", IMAGE_1)), 90,
                   "the first revision Healthy", operator)
    assert not secrets.missing(cluster, namespace)  # kwok would run pods without them
    return obj


def at_step(cluster, namespace, index, weight):
    def check():
        status = (ps(cluster, namespace) or {}).get("status", {})
        canary = status.get("canary") or {}
        ok = canary.get("stepIndex") == index and canary.get("actualWeight") == weight
        return status if ok else None
    return check


def test_full_canary_follows_the_split_table(cluster, namespace, operator):
    steps = [{"setWeight": 10}, {"pause": {"duration": "30s"}}, {"setWeight": 50},
             {"setWeight": 100}]
    first = start(cluster, namespace, operator, steps=steps)
    generation = first["metadata"]["generation"]
    assert len(jobs(cluster, namespace)) == 1  # the first revision waited for its Job too
    set_image(cluster, namespace, IMAGE_2)

    seen_new_pods: set[str] = set()
    snapshots: list[dict] = []

    def watch(check):
        def inner():
            seen_new_pods.update(p["metadata"]["name"] for p in pods(cluster, namespace, IMAGE_2))
            snapshots.append(deployments(cluster, namespace))
            return check()
        return inner

    # Step 1 (10%) is done and the 30 s pause runs: 4 stable + 1 canary = 20% actual.
    status = wait_for(watch(at_step(cluster, namespace, 1, 20)), 60, "the pause at 10%", operator)
    assert deployments(cluster, namespace) == {IMAGE_1: (4, 4), IMAGE_2: (1, 1)}
    assert status["canaryImage"] == IMAGE_2 and status["canary"]["weight"] == 10
    assert lua.run(lua.HEALTH, ps(cluster, namespace))["status"] == "Progressing"
    job_names = [j["metadata"]["name"] for j in jobs(cluster, namespace)]
    assert len(job_names) == 2 and all(n.startswith(f"{NAME}-migrate-") for n in job_names)
    # No canary pod before its Job succeeded.
    job = next(j for j in jobs(cluster, namespace) if j["metadata"]["name"].endswith(
        status["canaryRevision"]))
    done = job["status"]["completionTime"]
    created = min(p["metadata"]["creationTimestamp"] for p in pods(cluster, namespace, IMAGE_2))
    assert created >= done

    # The pause ends on time (not at the drift timer, 300 s here); 50% is 2 + 2 ready pods.
    started = datetime.fromisoformat(status["canary"]["stepStartedAt"].replace("Z", "+00:00"))
    status = wait_for(watch(lambda: (ps(cluster, namespace)["status"].get("canary") or {})
                            .get("stepIndex", 0) >= 2), 60, "the pause's end", operator)
    waited = (datetime.now(UTC) - started).total_seconds()
    assert 29 <= waited < 45
    obj = wait_for(watch(healthy(cluster, namespace, IMAGE_2)), 90, "promotion", operator)
    assert deployments(cluster, namespace) == {IMAGE_1: (0, 0), IMAGE_2: (4, 4)}
    assert obj["status"]["stableRevision"] != first["status"]["stableRevision"]
    assert obj["status"].get("canaryRevision") is None
    # The new revision made as many pods as its final count plus the surge, at most; the
    # total never passed replicas + maxSurge and stable never reached 0 before promotion.
    assert len(seen_new_pods) <= 4 + 1
    for snap in snapshots:
        assert sum(wanted for wanted, _ in snap.values()) <= 5, snap
        assert snap.get(IMAGE_1, (0, 0))[0] >= 1 or snap.get(IMAGE_2) == (4, 4), snap
    assert obj["metadata"]["generation"] == generation + 1  # only our image change
    assert len(jobs(cluster, namespace)) == 2  # one per revision
    reasons = events(cluster, namespace)
    for reason in ("RolloutStarted", "MigrationStarted", "MigrationSucceeded",
                   "StepCompleted", "Promoted"):
        assert reason in reasons, reason
    assert lua.run(lua.HEALTH, obj)["status"] == "Healthy"
    # A setWeight step ends the moment its split is ready, and its Event says what it was.
    done = messages(cluster, namespace, "StepCompleted")
    assert any("(setWeight 10)" in m and "stable 4/4 ready, canary 1/1 ready, actual weight 20%"
               in m for m in done), done
    assert any("(setWeight 50)" in m and "stable 2/2 ready, canary 2/2 ready, actual weight 50%"
               in m for m in done), done
    assert any("(setWeight 100)" in m for m in done), done


def test_failing_migration_keeps_stable_serving_and_retry_runs_it_again(
        cluster, namespace, operator):
    start(cluster, namespace, operator, steps=[{"setWeight": 50}], replicas=2)
    set_image(cluster, namespace, KWOK_FAIL_IMAGE)
    obj = wait_for(phase_is(cluster, namespace, "Degraded"), 60, "Degraded", operator)
    status = obj["status"]
    assert "MigrationFailed" in status["message"] and "BackoffLimitExceeded" in status["message"]
    assert condition(obj, "MigrationsApplied")["status"] == "False"
    assert condition(obj, "Stalled")["status"] == "True"
    assert pods(cluster, namespace, KWOK_FAIL_IMAGE) == []
    assert deployments(cluster, namespace) == {IMAGE_1: (2, 2)}
    assert lua.run(lua.HEALTH, obj)["status"] == "Degraded"
    failed = [j for j in jobs(cluster, namespace) if KWOK_FAIL_IMAGE in json.dumps(j)]
    assert len(failed) == 1
    wait_for(lambda: "MigrationFailed" in events(cluster, namespace), 30, "the Event")

    command(cluster, namespace, "retry")

    def rerun():
        now = [j for j in jobs(cluster, namespace) if KWOK_FAIL_IMAGE in json.dumps(j)]
        return now and now[0]["metadata"]["uid"] != failed[0]["metadata"]["uid"]
    wait_for(rerun, 60, "the migration Job run again", operator)
    wait_for(phase_is(cluster, namespace, "Degraded"), 60, "Degraded again", operator)
    assert pods(cluster, namespace, KWOK_FAIL_IMAGE) == []
    assert ps(cluster, namespace)["metadata"]["generation"] == obj["metadata"]["generation"]


def test_pause_promote_abort_retry(cluster, namespace, operator):
    steps = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]
    first = start(cluster, namespace, operator, steps=steps)
    spec = first["spec"]
    set_image(cluster, namespace, IMAGE_2)
    obj = wait_for(phase_is(cluster, namespace, "Paused"), 60, "Paused", operator)
    assert obj["status"]["canary"]["stepIndex"] == 1
    assert lua.run(lua.HEALTH, obj)["status"] == "Suspended"

    command(cluster, namespace, "promote")
    wait_for(at_step(cluster, namespace, 3, 50), 60, "the second pause at 50%", operator)
    command(cluster, namespace, "abort")
    obj = wait_for(phase_is(cluster, namespace, "Degraded"), 30, "aborted", operator)
    assert "aborted by e2e" in obj["status"]["message"]
    wait_for(lambda: deployments(cluster, namespace) == {IMAGE_1: (4, 4), IMAGE_2: (0, 0)},
             30, "canary at 0, stable at 4", operator)

    command(cluster, namespace, "retry")
    obj = wait_for(phase_is(cluster, namespace, "Paused"), 60, "paused again", operator)
    assert obj["status"]["canary"]["stepIndex"] == 1
    command(cluster, namespace, "promoteFull")
    obj = wait_for(healthy(cluster, namespace, IMAGE_2), 60, "promoted", operator)
    assert obj["spec"] == {**spec, "image": IMAGE_2}
    assert obj["metadata"]["generation"] == first["metadata"]["generation"] + 1
    reasons = events(cluster, namespace)
    for reason in ("PromoteCommand", "RolloutAborted", "RetryCommand"):
        assert reason in reasons, reason


def test_a_canary_of_many_replicas_moves_each_deployment_more_often_than_a_fight_would(
        cluster, namespace, operator):
    # maxSurge 1 over 12 replicas: each Deployment is written about a dozen times within
    # seconds, each time with other replicas. Only rewriting the same manifest is a fight.
    start(cluster, namespace, operator, steps=[{"setWeight": 10}, {"setWeight": 50},
                                               {"setWeight": 100}], replicas=12)
    set_image(cluster, namespace, IMAGE_2)
    obj = wait_for(healthy(cluster, namespace, IMAGE_2), 120, "promotion", operator)
    assert deployments(cluster, namespace) == {IMAGE_1: (0, 0), IMAGE_2: (12, 12)}
    assert condition(obj, "Degraded")["status"] == "False"
    assert "FightingAnotherManager" not in events(cluster, namespace)
    # Two dozen replica moves, and no Event of ours for each: the steps' Events tell them.
    assert not [m for m in messages(cluster, namespace, "Updated") if "Deployment/" in m]
    assert len(messages(cluster, namespace, "StepCompleted")) == 3


def test_scale_mid_step_back_to_stable_and_superseding(cluster, namespace, operator):
    steps = [{"setWeight": 50}, {"pause": {}}]
    start(cluster, namespace, operator, steps=steps, replicas=4)
    set_image(cluster, namespace, IMAGE_2)
    wait_for(phase_is(cluster, namespace, "Paused"), 60, "paused at 50%", operator)
    cluster.kubectl("scale", "paysvc", NAME, "-n", namespace, "--replicas=8")
    wait_for(lambda: deployments(cluster, namespace) == {IMAGE_1: (4, 4), IMAGE_2: (4, 4)},
             60, "the split recomputed at 50% of 8", operator)

    third = "registry.example/payment-runtime:3"
    set_image(cluster, namespace, third)
    wait_for(lambda: deployments(cluster, namespace).get(IMAGE_2, (None,))[0] == 0
             and deployments(cluster, namespace).get(third, (0,))[0] > 0, 60,
             "image 3 supersedes image 2", operator)
    assert "RolloutSuperseded" in events(cluster, namespace)
    assert deployments(cluster, namespace)[IMAGE_1][0] >= 1  # stable never 0

    set_image(cluster, namespace, IMAGE_1)
    obj = wait_for(healthy(cluster, namespace, IMAGE_1), 60, "back at stable", operator)
    assert obj["status"].get("canaryRevision") is None
    assert deployments(cluster, namespace)[IMAGE_1] == (8, 8)
    assert "RolledBack" in events(cluster, namespace)


class _Metric(BaseHTTPRequestHandler):
    value: object = 1.0

    def do_GET(self):
        body = json.dumps({"data": {"ratio": type(self).value}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def metric_server():
    handler = type("Handler", (_Metric,), {"value": 1.0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}/ratio"
    server.shutdown()


def _analysis(url, on_no_data="inconclusive", failure_limit=1):
    return {"interval": "2s", "failureLimit": failure_limit, "inconclusiveLimit": 0,
            "onNoData": on_no_data,
            "metrics": [{"name": "success", "web": {"url": url, "jsonPath": "data.ratio"},
                         "thresholdRange": {"min": 0.95}}]}


def test_web_analysis_aborts_when_the_value_turns_bad(cluster, namespace, operator,
                                                      metric_server):
    handler, url = metric_server
    steps = [{"setWeight": 25}, {"analysis": {"count": 30}}]
    start(cluster, namespace, operator, steps=steps, analysis=_analysis(url))
    set_image(cluster, namespace, IMAGE_2)

    def measured():
        status = (ps(cluster, namespace) or {}).get("status", {})
        run = (status.get("canary") or {}).get("analysis") or {}
        return run if run.get("successes", 0) >= 2 else None
    wait_for(measured, 60, "two good measurements", operator)
    handler.value = 0.5
    obj = wait_for(phase_is(cluster, namespace, "Degraded"), 2 * 2 + 10,
                   "abort within an interval of passing failureLimit", operator)
    message = obj["status"]["message"]
    assert "AnalysisFailed" in message and "0.5" in message and "0.95" in message
    run = obj["status"]["canary"]["analysis"]
    assert run["failures"] == 2 and run["phase"] == "Failed"
    wait_for(lambda: deployments(cluster, namespace).get(IMAGE_2, (0,))[0] == 0, 30,
             "canary at 0", operator)


@pytest.mark.parametrize(("on_no_data", "value", "phase"), [
    ("pass", "NaN", "Paused"),          # NaN never passes: inconclusive
    ("fail", None, "Degraded"),
    ("inconclusive", None, "Paused"),
    ("pass", None, "Healthy"),
])
def test_on_no_data_policies(cluster, namespace, operator, metric_server, on_no_data, value,
                             phase):
    handler, url = metric_server
    handler.value = value
    steps = [{"setWeight": 50}, {"analysis": {"count": 1}}]
    start(cluster, namespace, operator, steps=steps, replicas=2,
          analysis=_analysis(url, on_no_data, failure_limit=0))
    set_image(cluster, namespace, IMAGE_2)
    check = (healthy(cluster, namespace, IMAGE_2) if phase == "Healthy"
             else phase_is(cluster, namespace, phase))
    obj = wait_for(check, 60, phase, operator)
    if phase != "Healthy":
        assert obj["status"]["canaryRevision"]


def test_sigkill_at_each_step_ends_like_an_undisturbed_run(cluster, namespace, operator,
                                                            metric_server):
    _, url = metric_server
    steps = [{"setWeight": 25}, {"pause": {"duration": "10s"}}, {"analysis": {"count": 3}}]
    start(cluster, namespace, operator, steps=steps, analysis=_analysis(url))

    def restart_when(check, what):
        wait_for(check, 60, what, operator)
        operator.stop(signal.SIGKILL)
        operator.start()

    set_image(cluster, namespace, KWOK_SLOW_IMAGE)  # its Job takes 12 s
    restart_when(lambda: len(jobs(cluster, namespace)) == 2, "the Job created")
    restart_when(at_step(cluster, namespace, 1, 25), "mid-pause")  # 3 + 1 pods
    restart_when(lambda: ((ps(cluster, namespace)["status"].get("canary") or {})
                          .get("analysis") or {}).get("successes", 0) >= 1, "mid-analysis")
    obj = wait_for(healthy(cluster, namespace, KWOK_SLOW_IMAGE), 90, "promotion", operator)
    assert len(jobs(cluster, namespace)) == 2  # exactly one Job per revision
    assert deployments(cluster, namespace) == {IMAGE_1: (0, 0), KWOK_SLOW_IMAGE: (4, 4)}
    # Every step completed exactly once: none repeated, none skipped.
    done = sorted(m.split(" (")[0] for m in messages(cluster, namespace, "StepCompleted"))
    assert done == ["step 1/3", "step 2/3", "step 3/3"], done
    assert obj["status"].get("canary") is None


def test_a_revision_whose_pods_cannot_start_is_reported_and_rolled_back(
        cluster, namespace, operator):
    from hack.tools import KWOK_CONFIG_ERROR_IMAGE

    no_job = {"url": {"secretRef": {"name": "d", "key": "u"}}, "migrations": {"enabled": False}}
    obj = service(steps=[{"setWeight": 50}], replicas=2, deadline=30)
    obj["spec"]["database"] = no_job
    apply(cluster, namespace, obj)
    wait_for(healthy(cluster, namespace, IMAGE_1), 90, "the first revision Healthy", operator)
    set_image(cluster, namespace, KWOK_CONFIG_ERROR_IMAGE)

    def stuck():
        got = ps(cluster, namespace)
        return got if condition(got, "PodsHealthy").get("status") == "False" else None

    got = wait_for(stuck, 60, "PodsHealthy=False", operator)
    pods_cond = condition(got, "PodsHealthy")
    assert pods_cond["reason"] == "CreateContainerConfigError"
    assert 'secret "payments-db" not found' in pods_cond["message"]
    assert "CreateContainerConfigError" in got["status"]["message"]  # the step says why
    assert got["status"]["phase"] == "Progressing"
    # Its pods never become ready: the step's deadline (30 s) aborts, stable serves alone.
    got = wait_for(phase_is(cluster, namespace, "Degraded"), 60, "aborted", operator)
    assert "ProgressDeadlineExceeded" in got["status"]["message"]
    assert "CreateContainerConfigError" in got["status"]["message"]
    wait_for(lambda: deployments(cluster, namespace).get(KWOK_CONFIG_ERROR_IMAGE, (0,))[0] == 0
             and deployments(cluster, namespace)[IMAGE_1] == (2, 2), 30, "rolled back", operator)
