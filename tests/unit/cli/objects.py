"""API objects as the API server returns them, for the plugin's renderer and commands."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
NAME, NAMESPACE, UID = "pay", "payments", "0b5e6c1e-0000-4000-8000-000000000001"
OLD, STABLE, CANARY = "6c8d7f9b4a", "7d9f8c6b5a", "5b8c4d7e9f"
IMAGE_1 = "payment-runtime:1"
IMAGE_2 = "payment-runtime:2"
STEPS = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"analysis": {"count": 5}}]


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(type_, status, reason, message=""):
    return {"type": type_, "status": status, "reason": reason, "message": message or reason,
            "lastTransitionTime": ago(300), "observedGeneration": 2}


GATES_OPEN = [
    condition("SecretsReady", "True", "SecretRefs", "2 secrets referenced"),
    condition("TopicsReady", "True", "NoKafka", "no Kafka topics"),
    condition("MigrationsApplied", "True", "Succeeded",
              f"migration Job pay-migrate-{STABLE} succeeded for revision {STABLE}"),
]


def service(status=None, steps=STEPS, image=IMAGE_1, replicas=4, generation=2):
    spec = {"image": image, "replicas": replicas,
            "database": {"url": {"secretRef": {"name": "d", "key": "u"}}},
            "rollout": {"progressDeadlineSeconds": 600}}
    if steps is not None:
        spec["rollout"]["canary"] = {"steps": copy.deepcopy(steps), "maxSurge": 1}
    return {
        "apiVersion": "paydeck.dev/v1alpha1", "kind": "PaymentService",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "uid": UID, "generation": generation,
                     "resourceVersion": "4711", "creationTimestamp": ago(3600)},
        "spec": spec,
        "status": copy.deepcopy(status) if status is not None else {},
    }


def healthy_status(**extra):
    status = {
        "observedGeneration": 2, "phase": "Healthy", "message": "4/4 replicas ready",
        "conditions": [condition("Ready", "True", "Ready", "4/4 replicas ready"), *GATES_OPEN],
        "replicas": 4, "readyReplicas": 4, "updatedReplicas": 4,
        "stableRevision": STABLE, "stableImage": IMAGE_1,
        "migration": {"revision": STABLE, "job": f"pay-migrate-{STABLE}",
                      "phase": "Succeeded", "appliedAt": ago(1800)},
    }
    status.update(extra)
    return status


def canary_status(step_index, weight, actual, phase="Progressing", message="", migration=None,
                  **canary):
    if migration is None:
        migration = {"revision": CANARY, "job": f"pay-migrate-{CANARY}", "phase": "Succeeded",
                     "appliedAt": ago(60)}
    status = healthy_status(
        phase=phase, message=message, replicas=5, readyReplicas=5, updatedReplicas=1,
        canaryRevision=CANARY, canaryImage=IMAGE_2, migration=migration,
    )
    status["canary"] = {"stepIndex": step_index, "stepStartedAt": ago(30), "weight": weight,
                        "actualWeight": actual, "paused": False, "aborted": False, **canary}
    return status


def deployment(revision, replicas, ready=None, image=IMAGE_1, age=3600):
    ready = replicas if ready is None else ready
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"{NAME}-{revision}", "namespace": NAMESPACE,
                     "creationTimestamp": ago(age),
                     "labels": {"app.kubernetes.io/instance": NAME,
                                "paydeck.dev/revision": revision},
                     "ownerReferences": [{"kind": "PaymentService", "name": NAME, "uid": UID,
                                          "controller": True}]},
        "spec": {"replicas": replicas,
                 "template": {"spec": {"containers": [{"name": "payment-runtime",
                                                       "image": image}]}}},
        "status": {"replicas": replicas, "readyReplicas": ready, "updatedReplicas": replicas},
    }


def pod(revision, suffix, ready=True, age=3600, waiting=None, restarts=0):
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {"startedAt": ago(age)}}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{NAME}-{revision}-{suffix}", "namespace": NAMESPACE,
                     "creationTimestamp": ago(age),
                     "labels": {"app.kubernetes.io/instance": NAME,
                                "paydeck.dev/revision": revision}},
        "spec": {"containers": [{"name": "payment-runtime"}]},
        "status": {"phase": "Pending" if waiting else "Running",
                   "containerStatuses": [{"name": "payment-runtime", "ready": ready,
                                          "restartCount": restarts, "state": state}]},
    }


def job(revision, failed=False, age=90):
    if failed:
        conditions = [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                       "message": "Job has reached the specified backoff limit"}]
        counts = {"failed": 1}
    else:
        conditions = [{"type": "Complete", "status": "True"}]
        counts = {"succeeded": 1}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": f"{NAME}-migrate-{revision}", "namespace": NAMESPACE,
                         "creationTimestamp": ago(age)},
            "status": {"conditions": conditions, **counts}}
