"""The reconcile loop against an in-memory API server: apply, publish once, then stay idle.

A PaymentService goes in; its children come out, the status is written once, and a second
pass over an unchanged world writes nothing at all.  Also: a spec that moves while the
status is written is left to the next pass, API failures end up in the outcome (or are
raised when there is nowhere to write them), and prune deletes only what this
PaymentService controls.
"""

import copy
from datetime import UTC, datetime

import pytest
from payment_operator import builders, reconcile
from payment_operator.api import parse
from payment_operator.coalesce import Coalescer
from payment_operator.kube.client import KubeError
from payment_operator.rollout import engine
from payment_operator.topics import AdminClients

from tests.unit.builders.cases import NAMESPACE, minimal_body
from tests.unit.operator import fake_kafka
from tests.unit.operator.fake_kafka import FakeKafka
from tests.unit.operator.fake_kube import FakeKube

pytestmark = pytest.mark.unit

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
NAME = "pay"


NO_MIGRATIONS = {"url": {"secretRef": {"name": "db", "key": "url"}},
                 "migrations": {"enabled": False}}


def _ps(kube: FakeKube, **spec) -> dict:
    """A PaymentService without migrations (its first pass creates the Deployment)."""
    body = minimal_body(**{"database": NO_MIGRATIONS, **spec})
    body["metadata"].pop("uid")  # the fake API server assigns one
    return kube.add(body)


def _pass(kube: FakeKube, *, prune: bool = True, trigger: str = "test",
          coalescer: Coalescer | None = None,
          kafka_admins: AdminClients | None = None) -> reconcile.Outcome:
    return reconcile.reconcile(
        kube, coalescer or Coalescer(), NAMESPACE, NAME, builders.Context(),
        kafka_admins=AdminClients(timeout=1.0) if kafka_admins is None else kafka_admins,
        trigger=trigger,
        prune_children=prune, now=NOW,
    )


def _desired(kube: FakeKube) -> list[dict]:
    return builders.build_all(parse(kube.stored("PaymentService", NAMESPACE, NAME)),
                              builders.Context())


def test_a_new_service_gets_its_children_and_one_status_write():
    kube = FakeKube()
    _ps(kube)

    outcome = _pass(kube)

    desired = _desired(kube)
    assert {m["kind"] for m in desired} <= kube.kinds()
    applied = [(kind, name) for verb, kind, name in kube.writes() if verb == "apply"]
    assert applied == [(m["kind"], m["metadata"]["name"]) for m in desired]
    assert [w for w in kube.writes() if w[0] == "patch_status"] == [
        ("patch_status", "PaymentService", NAME)]
    status = kube.stored("PaymentService", NAMESPACE, NAME)["status"]
    assert status["observedGeneration"] == 1 and status["phase"]
    assert outcome.failure is None and not outcome.coalesced
    assert outcome.requeue_after is None
    reasons = [e.reason for e in outcome.events]
    assert reasons.count("Created") == 1  # one Event naming every child created
    created = next(e.message for e in outcome.events if e.reason == "Created")
    assert all(f"{m['kind']}/{m['metadata']['name']}" in created for m in desired), created
    assert f"Phase{status['phase']}" in reasons


def test_an_idle_second_pass_writes_nothing():
    kube = FakeKube()
    _ps(kube)
    _pass(kube)
    before = kube.stored("PaymentService", NAMESPACE, NAME)
    kube.calls.clear()

    outcome = _pass(kube, trigger="resync")

    assert kube.writes() == []
    assert outcome.events == [] and outcome.failure is None
    assert kube.stored("PaymentService", NAMESPACE, NAME) == before


def test_a_spec_change_is_applied_and_published():
    kube = FakeKube()
    _ps(kube)
    _pass(kube)
    kube.touch("PaymentService", NAMESPACE, NAME, replicas=5)
    kube.calls.clear()

    outcome = _pass(kube)

    ps = parse(kube.stored("PaymentService", NAMESPACE, NAME))
    assert ("apply", "Deployment", f"{NAME}-{builders.revision(ps)}") in kube.writes()
    assert kube.stored("PaymentService", NAMESPACE, NAME)["status"]["observedGeneration"] == 2
    assert "Updated" in [e.reason for e in outcome.events]


def test_with_migrations_the_job_comes_first_and_the_deployment_after_it_succeeded():
    kube = FakeKube()
    _ps(kube, database={"url": {"secretRef": {"name": "db", "key": "url"}}})
    _pass(kube)
    ps = parse(kube.stored("PaymentService", NAMESPACE, NAME))
    job = f"{NAME}-migrate-{builders.revision(ps)}"
    assert kube.stored("Job", NAMESPACE, job) is not None
    assert "Deployment" not in kube.kinds()
    status = kube.stored("PaymentService", NAMESPACE, NAME)["status"]
    assert status["phase"] == "Progressing" and status["migration"]["phase"] == "Running"

    kube.objects[("Job", NAMESPACE, job)]["status"] = {
        "conditions": [{"type": "Complete", "status": "True"}]}
    _pass(kube)
    assert kube.stored("Deployment", NAMESPACE, f"{NAME}-{builders.revision(ps)}") is not None
    status = kube.stored("PaymentService", NAMESPACE, NAME)["status"]
    assert status["migration"]["phase"] == "Succeeded"
    assert status["canaryRevision"] == builders.revision(ps)  # until its pods are ready


def test_a_spec_that_moves_during_the_status_write_is_left_to_the_next_pass():
    """The write meets a 409 because the spec moved on; the re-read object has a newer
    generation, so the pass writes nothing (the next pass, triggered by that change,
    reports the new generation) instead of stamping old observations with it."""
    kube = FakeKube()
    _ps(kube)

    def someone_edits_the_spec(fake: FakeKube) -> None:
        fake.before_status_patch = None
        fake.touch("PaymentService", NAMESPACE, NAME, replicas=3)
        # ...and a command-line tool wrote status meanwhile: still not our phase change
        fake.objects[("PaymentService", NAMESPACE, NAME)]["status"] = {"phase": "Paused"}

    kube.before_status_patch = someone_edits_the_spec
    outcome = _pass(kube)

    assert [w for w in kube.writes() if w[0] == "patch_status"] == [
        ("patch_status", "PaymentService", NAME)]  # the one that met the conflict
    stored = kube.stored("PaymentService", NAMESPACE, NAME)
    assert stored["status"] == {"phase": "Paused"}
    assert stored["metadata"]["generation"] == 2
    assert outcome.failure is None
    assert not [e for e in outcome.events if e.reason.startswith("Phase")]


def test_a_rejected_child_is_a_real_failure_in_the_outcome_and_the_status():
    kube = FakeKube()
    _ps(kube)
    kube.apply_errors["Deployment"] = KubeError(403, "Forbidden", "deployments is forbidden")

    outcome = _pass(kube)  # a blocking caller: runs its own pass, so the failure is its own

    assert not outcome.coalesced
    assert outcome.failure is not None and outcome.failure.reason == "Forbidden"
    assert not outcome.failure.retryable
    assert ("Warning", "Forbidden") in [(e.type, e.reason) for e in outcome.events]
    status = kube.stored("PaymentService", NAMESPACE, NAME)["status"]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "Forbidden"

    kube.calls.clear()
    again = _pass(kube)  # the same failure again: no second Warning, no status write
    assert again.failure == outcome.failure
    assert [e for e in again.events if e.type == "Warning"] == []
    assert [w for w in kube.writes() if w[0] == "patch_status"] == []


def test_an_unreachable_api_server_is_raised_not_published():
    kube = FakeKube()
    _ps(kube)
    kube.apply_errors["ServiceAccount"] = KubeError(0, "Unreachable", "connection refused")

    with pytest.raises(KubeError) as caught:
        _pass(kube)
    assert caught.value.status == 0
    assert [w for w in kube.writes() if w[0] == "patch_status"] == []


def test_a_missing_or_deleting_object_is_left_alone():
    kube = FakeKube()
    assert _pass(kube).obj is None
    assert kube.writes() == []

    _ps(kube)
    kube.objects[("PaymentService", NAMESPACE, NAME)]["metadata"]["deletionTimestamp"] = "now"
    outcome = _pass(kube)
    assert outcome.obj is not None and outcome.events == []
    assert kube.writes() == []


# ---- prune ------------------------------------------------------------------------------


def _stray(kube: FakeKube, name: str, labels: dict, owners: list[dict]) -> None:
    kube.add({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels,
                     "ownerReferences": owners},
        "data": {},
    })


def test_prune_deletes_only_unwanted_children_this_service_controls():
    kube = FakeKube()
    ps = _ps(kube)
    _pass(kube)
    uid = ps["metadata"]["uid"]
    labels = builders.child_labels(parse(ps))

    def owner(uid_: str, controller: bool = True) -> dict:
        return {"apiVersion": "paydeck.dev/v1alpha1", "kind": "PaymentService", "name": NAME,
                "uid": uid_, "controller": controller, "blockOwnerDeletion": True}

    _stray(kube, "ours-unwanted", labels, [owner(uid)])
    _stray(kube, "unowned", labels, [])
    _stray(kube, "other-controller", labels, [owner("another-uid")])
    _stray(kube, "ours-not-controller", labels, [
        owner(uid, controller=False),
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": "rs-uid",
         "controller": True},
    ])
    kube.calls.clear()

    outcome = _pass(kube, prune=True)

    assert [w for w in kube.writes() if w[0] == "delete"] == [
        ("delete", "ConfigMap", "ours-unwanted")]
    for kept in ("unowned", "other-controller", "ours-not-controller"):
        assert kube.stored("ConfigMap", NAMESPACE, kept) is not None, kept
    for manifest in _desired(kube):  # the wanted children all survive
        assert kube.stored(manifest["kind"], NAMESPACE, manifest["metadata"]["name"])
    assert [e.message for e in outcome.events if e.reason == "Pruned"] == [
        "deleted ConfigMap/ours-unwanted: no longer wanted"]


def test_without_prune_nothing_is_deleted():
    kube = FakeKube()
    ps = _ps(kube)
    _pass(kube)
    owner = {"apiVersion": "paydeck.dev/v1alpha1", "kind": "PaymentService", "name": NAME,
             "uid": ps["metadata"]["uid"], "controller": True}
    _stray(kube, "ours-unwanted", builders.child_labels(parse(ps)), [owner])
    kube.calls.clear()

    _pass(kube, prune=False)

    assert kube.writes() == []
    assert kube.stored("ConfigMap", NAMESPACE, "ours-unwanted") is not None


# ---- topicProvisioner admin ---------------------------------------------------------------

ADMIN_KAFKA = {"bootstrapServers": "kafka:9092", "topicProvisioner": "admin",
               "topics": [{"name": "payment.events", "partitions": 6, "replicas": 1,
                           "config": {"retention.ms": "3600000"}}]}


def _condition(kube: FakeKube, type_: str) -> dict:
    status = kube.stored("PaymentService", NAMESPACE, NAME)["status"]
    return next(c for c in status["conditions"] if c["type"] == type_)


def _deployment(kube: FakeKube) -> dict | None:
    ps = parse(kube.stored("PaymentService", NAMESPACE, NAME))
    return kube.stored("Deployment", NAMESPACE, f"{NAME}-{builders.revision(ps)}")


def test_admin_topics_are_reconciled_in_the_pass_and_become_the_gate():
    kube, cluster = FakeKube(), FakeKafka()
    admins, configs = fake_kafka.admins(cluster)
    _ps(kube, kafka=ADMIN_KAFKA)

    outcome = _pass(kube, kafka_admins=admins)

    assert cluster.topics == {"payment.events": {"partitions": 6, "replicas": 1,
                                                 "config": {"retention.ms": "3600000"}}}
    gate = _condition(kube, "TopicsReady")
    assert (gate["status"], gate["reason"]) == ("True", "Ready")
    assert "created payment.events" in gate["message"]
    changed = [e for e in outcome.events if e.reason == "KafkaTopicsChanged"]
    assert [e.message for e in changed] == [
        "kafka:9092: created payment.events (6 partitions, replication factor 1)"]
    assert _deployment(kube) is not None  # the gate is open: the first revision runs
    assert len(configs) == 1
    assert configs[0]["bootstrap.servers"] == "kafka:9092"
    assert configs[0]["security.protocol"] == "PLAINTEXT"
    assert configs[0]["socket.timeout.ms"] == 1000

    _pass(kube, kafka_admins=admins)  # the gate's message loses "created ..." once
    kube.calls.clear()
    cluster.calls.clear()
    idle = _pass(kube, kafka_admins=admins, trigger="resync")

    assert cluster.calls == ["describe_topics", "describe_configs"]  # reads only
    assert kube.writes() == [] and idle.events == []
    assert len(configs) == 1  # one client for the bootstrap string, every pass


def test_an_unreachable_kafka_closes_the_gate_and_the_rest_of_the_pass_goes_on():
    kube, cluster = FakeKube(), FakeKafka(down=True)
    admins, _ = fake_kafka.admins(cluster)
    _ps(kube, kafka=ADMIN_KAFKA)

    outcome = _pass(kube, kafka_admins=admins)

    assert cluster.calls == ["describe_topics"]  # nothing more once it did not answer
    gate = _condition(kube, "TopicsReady")
    assert (gate["status"], gate["reason"]) == ("False", "KafkaUnreachable")
    assert "kafka:9092" in gate["message"] and "_TIMED_OUT" in gate["message"]
    assert outcome.failure is None  # not a failure of the pass: a closed gate
    assert outcome.requeue_after == engine.GATE_POLL_SECONDS
    assert ("apply", "Service", NAME) in kube.writes()  # the supporting children are applied
    deployment = _deployment(kube)
    assert deployment is None or deployment["spec"]["replicas"] == 0

    cluster.down = False
    _pass(kube, kafka_admins=admins, trigger="requeue")

    assert _condition(kube, "TopicsReady")["status"] == "True"
    assert "payment.events" in cluster.topics
    assert _deployment(kube)["spec"]["replicas"] > 0


def test_a_partition_decrease_keeps_the_gate_closed_without_a_write():
    kube, cluster = FakeKube(), FakeKafka()
    cluster.topics["payment.events"] = {"partitions": 12, "replicas": 1,
                                        "config": {"retention.ms": "3600000"}}
    admins, _ = fake_kafka.admins(cluster)
    _ps(kube, kafka=ADMIN_KAFKA)

    _pass(kube, kafka_admins=admins)

    assert cluster.writes() == []
    assert cluster.topics["payment.events"]["partitions"] == 12
    gate = _condition(kube, "TopicsReady")
    assert (gate["status"], gate["reason"]) == ("False", "PartitionDecreaseRefused")


def test_other_provisioners_never_touch_kafka():
    kube, cluster = FakeKube(), FakeKafka()
    admins, configs = fake_kafka.admins(cluster)
    _ps(kube, kafka={**ADMIN_KAFKA, "topicProvisioner": "none"})
    _pass(kube, kafka_admins=admins)
    assert cluster.calls == [] and configs == []
    assert _condition(kube, "TopicsReady")["reason"] == "NotManaged"


def _ready(kube: FakeKube, *names: str) -> None:
    """The pods of these Deployments follow their replicas, all ready."""
    for name in names:
        deployment = kube.objects.get(("Deployment", NAMESPACE, name))
        if deployment is not None:
            replicas = deployment["spec"]["replicas"]
            deployment["status"] = {"replicas": replicas, "readyReplicas": replicas}


def _roll_out(kube: FakeKube, image: str) -> str:
    """Change the image and pass until the new revision is Healthy: its Deployment."""
    kube.touch("PaymentService", NAMESPACE, NAME, image=image)
    new = f"{NAME}-{builders.revision(parse(kube.stored('PaymentService', NAMESPACE, NAME)))}"
    for _ in range(10):
        _pass(kube, prune=False)
        _ready(kube, *(name for kind, _, name in kube.objects if kind == "Deployment"))
        if kube.stored("PaymentService", NAMESPACE, NAME)["status"]["phase"] == "Healthy":
            return new
    raise AssertionError(f"{image} never became Healthy")


def test_a_pass_that_drops_a_revision_prunes_and_one_that_adds_one_does_not():
    kube = FakeKube()
    _ps(kube)
    _pass(kube)
    _ready(kube, *(name for kind, _, name in kube.objects if kind == "Deployment"))
    _pass(kube, prune=False)

    def pruning_lists() -> set[str]:
        return {kind for verb, kind, _ in kube.calls if verb == "list"} - {"Deployment"}

    # Two more revisions, kept (the old ones at 0 replicas, engine.REVISION_HISTORY_LIMIT):
    # no revision goes, so no pass lists anything to prune.
    for version in ("2.0.0", "3.0.0"):
        kube.calls.clear()
        _roll_out(kube, f"ghcr.io/paydeck/payment-runtime:{version}")
        assert pruning_lists() == set(), version
        assert not [w for w in kube.writes() if w[0] == "delete"]
    assert len([k for k in kube.objects if k[0] == "Deployment"]) == 3
    kube.calls.clear()
    _roll_out(kube, "ghcr.io/paydeck/payment-runtime:4.0.0")  # one too many: the oldest goes
    assert [w[1] for w in kube.writes() if w[0] == "delete"] == ["Deployment"]
    assert len([k for k in kube.objects if k[0] == "Deployment"]) == 3
    # Not asked (a child-triggered pass): only the revisions' kinds are listed.
    assert pruning_lists() == {"Job"}


def _workload(name: str, revision: str | None, replicas: int | None,
              kind: str = "Deployment") -> dict:
    labels = {} if revision is None else {builders.meta.LABEL_REVISION: revision}
    spec = {} if replicas is None else {"replicas": replicas}
    return {"kind": kind, "metadata": {"name": name, "labels": labels}, "spec": spec}


def test_scale_downs_are_written_before_everything_else():
    workloads = [_workload("svc-a", "a", 2), _workload("svc-b", "b", 3)]
    ordered = reconcile.scale_downs_first(workloads, {"a": 1, "b": 4})
    assert [w["metadata"]["name"] for w in ordered] == ["svc-b", "svc-a"]


def test_without_a_scale_down_the_order_is_kept():
    workloads = [_workload("migrate", None, None, kind="Job"),
                 _workload("svc-a", "a", None),  # the autoscaler's replicas: never "down"
                 _workload("svc-b", "b", 4), _workload("svc-c", "c", 0)]
    ordered = reconcile.scale_downs_first(workloads, {"a": 5, "b": 4})
    assert ordered == workloads


def _image_sorting_first(kube: FakeKube) -> str:
    """An image whose revision sorts before the running one: its Deployment is built first,
    so only the write order keeps the canary's scale-up after the stable side's scale-down."""
    body = copy.deepcopy(kube.stored("PaymentService", NAMESPACE, NAME))
    running = builders.revision(parse(body))
    for patch in range(100):
        body["spec"]["image"] = f"ghcr.io/paydeck/payment-runtime:2.0.{patch}"
        if builders.revision(parse(body)) < running:
            return body["spec"]["image"]
    raise AssertionError("no image sorts first")


def test_a_canary_never_asks_for_more_than_replicas_plus_surge_between_writes():
    kube = FakeKube()
    _ps(kube, replicas=4, rollout={"canary": {"steps": [{"setWeight": 50}], "maxSurge": 1}})
    _pass(kube)
    _ready(kube, *(name for kind, _, name in kube.objects if kind == "Deployment"))
    _pass(kube, prune=False)
    totals: list[int] = []
    apply = kube.apply

    def counting_apply(manifest, resource, *, force=False):
        got = apply(manifest, resource, force=force)
        if resource.kind == "Deployment":
            totals.append(sum(obj["spec"].get("replicas", 0) for (kind, _, _), obj
                              in kube.objects.items() if kind == "Deployment"))
        return got

    kube.apply = counting_apply
    _roll_out(kube, _image_sorting_first(kube))
    assert totals and max(totals) <= 5
    assert 5 in totals  # the surge was used: the canary moved in the stable side's room


def test_a_rollouts_replica_moves_are_no_updated_event_a_users_rescale_is():
    kube = FakeKube()
    _ps(kube, replicas=4, rollout={"canary": {"steps": [{"setWeight": 50}], "maxSurge": 1}})
    _pass(kube)
    _ready(kube, *(name for kind, _, name in kube.objects if kind == "Deployment"))
    _pass(kube, prune=False)
    kube.touch("PaymentService", NAMESPACE, NAME, image="ghcr.io/paydeck/payment-runtime:2")
    seen: list = []
    for _ in range(10):
        seen += _pass(kube, prune=False).events
        _ready(kube, *(name for kind, _, name in kube.objects if kind == "Deployment"))
        if kube.stored("PaymentService", NAMESPACE, NAME)["status"]["phase"] == "Healthy":
            break
    posted = [obj["reason"] for (kind, _, _), obj in kube.objects.items() if kind == "Event"]
    assert "Promoted" in posted and posted.count("StepCompleted") == 1  # the rollout's own
    assert [e.reason for e in seen].count("PhaseHealthy") == 1
    assert "Updated" not in [e.reason for e in seen], seen  # stable 4 > 2 > 0, canary 1 > 4

    kube.touch("PaymentService", NAMESPACE, NAME, replicas=6)  # no rollout: say it
    updated = [e for e in _pass(kube).events if e.reason == "Updated"]
    assert len(updated) == 1 and "Deployment/" in updated[0].message
