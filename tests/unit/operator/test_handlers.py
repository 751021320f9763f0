"""Kopf glue: handlers registered from the state built at start-up, commands and requeues.

The handlers are called directly (as Kopf would, with keyword arguments) against an
:class:`OperatorState` over the in-memory API server; Kopf's Event posting is replaced by a
list, since it needs the running operator's queues.
"""

import asyncio
import threading
import time

import kopf
import pytest
from payment_operator import handlers, reconcile
from payment_operator.diffbase import DigestDiffBaseStorage
from payment_operator.kube.errors import KubeError
from payment_operator.settings import Settings
from payment_operator.state import OperatorState
from payment_operator.topics import AdminClients

from tests.unit.builders.cases import NAMESPACE, minimal_body
from tests.unit.operator import fake_kafka
from tests.unit.operator.fake_kafka import FakeKafka
from tests.unit.operator.fake_kube import FakeKube

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

NAME = "pay"
KEY = (NAMESPACE, NAME)


@pytest.fixture
def posted(monkeypatch):
    events: list[tuple[str, str]] = []
    monkeypatch.setattr(handlers, "_event",
                        lambda body, type_, reason, message: events.append((type_, reason)))
    return events


@pytest.fixture
def state():
    s = OperatorState.from_settings(Settings(resync_seconds=7, standalone=True), FakeKube())
    yield s
    s.scheduler.close()


def _add_ps(state: OperatorState, status: dict | None = None) -> dict:
    """A PaymentService without migrations (its first pass creates the Deployment)."""
    body = minimal_body(database={"url": {"secretRef": {"name": "db", "key": "url"}},
                                  "migrations": {"enabled": False}})
    body["metadata"].pop("uid")
    if status is not None:
        body["status"] = status
    return state.kube.add(body)


def _delivered(state: OperatorState) -> dict:
    """The PaymentService as stored, delivered as its watch would (a MODIFIED event)."""
    body = state.kube.stored("PaymentService", NAMESPACE, NAME)
    asyncio.run(handlers.on_parent_event(state, body=kopf.Body(body), type="MODIFIED"))
    return body


def _kopf_kwargs(obj: dict, **extra) -> dict:
    body = kopf.Body(obj)
    return {"body": body, "meta": body.meta, "status": body.status, **extra}


# ---- registration -----------------------------------------------------------------------


def test_register_binds_every_handler_with_the_settings_of_the_run(state):
    registry = kopf.OperatorRegistry()
    handlers.register(registry, state)

    timers = list(registry._spawning.get_all_handlers())
    assert [(t.id, t.interval, t.initial_delay) for t in timers] == [("resync", 7, 7)]
    activities = {h.id for h in registry._activities.get_all_handlers()}
    assert activities == {"login_via_client", "configure", "stop"}
    changing = {(h.id, str(h.reason)) for h in registry._changing.get_all_handlers()}
    assert {hid for hid, _ in changing} == {"on_change", "on_delete"}
    watching = list(registry._watching.get_all_handlers())
    by_id = {}
    for handler in watching:
        by_id.setdefault(handler.id, []).append(handler)
    assert len(by_id["on_command"]) == 1 and by_id["on_command"][0].when is not None
    assert len(by_id["on_child_event"]) == len(handlers.resources.CHILDREN)


def test_two_runs_do_not_share_handlers_or_state():
    one = OperatorState.from_settings(Settings(resync_seconds=3), FakeKube())
    two = OperatorState.from_settings(Settings(resync_seconds=90), FakeKube())
    first, second = kopf.OperatorRegistry(), kopf.OperatorRegistry()
    handlers.register(first, one)
    handlers.register(second, two)
    assert [t.interval for t in first._spawning.get_all_handlers()] == [3]
    assert [t.interval for t in second._spawning.get_all_handlers()] == [90]
    assert one.coalescer is not two.coalescer and one.scheduler is not two.scheduler


def test_configure_applies_kopf_settings(state):
    settings = kopf.OperatorSettings()
    handlers.configure(state, settings=settings)
    assert settings.persistence.finalizer == handlers.FINALIZER
    assert isinstance(settings.persistence.progress_storage, kopf.StatusProgressStorage)
    assert isinstance(settings.persistence.diffbase_storage, DigestDiffBaseStorage)
    assert settings.peering.name == "paydeck" and settings.peering.stealth
    assert settings.peering.mandatory is False  # standalone in this state's settings
    assert settings.execution.max_workers == state.settings.thread_workers
    assert settings.queueing.worker_limit == state.settings.worker_limit


@pytest.mark.parametrize(
    ("namespaces", "disabled"),
    [([], False), (["shop"], True), (["shop", "bank"], True), (["shop", "team-*"], False),
     (["!kube-system"], False)],
)
def test_scanning_is_off_for_exact_namespaces(namespaces, disabled):
    # The namespaced install grants Kopf nothing cluster-wide: no Namespace list, no CRD watch.
    state = OperatorState.from_settings(Settings(namespaces=namespaces), FakeKube())
    settings = kopf.OperatorSettings()
    handlers.configure(state, settings=settings)
    assert settings.scanning.disabled is disabled
    state.scheduler.close()


def test_the_resync_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("PAYDECK_RESYNC_SECONDS", "12.5")
    state = OperatorState.from_settings(Settings(), FakeKube())
    registry = kopf.OperatorRegistry()
    handlers.register(registry, state)
    assert [t.interval for t in registry._spawning.get_all_handlers()] == [12.5]


# ---- triggers ---------------------------------------------------------------------------


def test_on_change_reconciles_and_raises_for_a_failure(state, posted):
    obj = _add_ps(state)
    handlers.on_change(state, **_kopf_kwargs(obj, reason="create", retry=0))
    assert "Created" in [reason for _, reason in posted]

    state.kube.apply_errors["Deployment"] = KubeError(403, "Forbidden", "no")
    state.kube.touch("PaymentService", NAMESPACE, NAME, replicas=4)
    obj = _delivered(state)
    with pytest.raises(kopf.TemporaryError) as caught:
        handlers.on_change(state, **_kopf_kwargs(obj, reason="update", retry=2))
    assert caught.value.delay == handlers.retry_delay(2)


@pytest.mark.parametrize(("status", "pending"), [
    (None, False),
    ({}, False),
    ({"command": {"action": "promote"}}, False),
    ({"command": {"action": "promote", "requestedAt": "2025-01-01T00:00:00Z"}}, True),
    ({"command": {"action": "promote", "requestedAt": "2025-01-01T00:00:00Z"},
      "lastHandledCommandAt": "2025-01-01T00:00:00Z"}, False),
    ({"command": {"action": "promote", "requestedAt": "2025-01-01T00:00:00Z"},
      "lastHandledCommandAt": "2025-01-01T00:00:00+00:00"}, False),  # the same instant
    ({"command": {"action": "abort", "requestedAt": "2025-01-01T00:05:00Z"},
      "lastHandledCommandAt": "2025-01-01T00:00:00Z"}, True),
])
def test_a_command_is_pending_until_its_time_is_handled(status, pending):
    assert handlers.command_pending(status) is pending


def test_a_pending_command_triggers_a_pass_without_waiting(state, posted):
    command = {"action": "promote", "requestedAt": "2025-01-01T00:00:00Z", "requestedBy": "me"}
    obj = _add_ps(state, status={"command": command})
    assert handlers._command_waiting(**_kopf_kwargs(obj))

    handlers.on_command(state, **_kopf_kwargs(obj, type="MODIFIED"))

    assert ("apply", "Deployment") in {(verb, kind) for verb, kind, _ in state.kube.writes()}
    state.kube.calls.clear()
    handlers.on_command(state, **_kopf_kwargs(obj, type="DELETED"))
    assert state.kube.calls == []


def test_a_command_is_seen_by_its_pass_even_before_the_watch_event_is_cached(state, posted):
    obj = _add_ps(state)
    handlers.on_change(state, **_kopf_kwargs(obj, reason="create", retry=0))  # cached now
    command = {"action": "abort", "requestedAt": "2025-01-01T00:00:00Z", "requestedBy": "me"}
    stored = state.kube.objects[("PaymentService", NAMESPACE, NAME)]
    stored["status"]["command"] = command
    state.kube.touch("PaymentService", NAMESPACE, NAME)  # the user's status write
    # Kopf hands the event's body to on_command; on_parent_event may not have run yet.
    handlers.on_command(state, **_kopf_kwargs(state.kube.stored("PaymentService", NAMESPACE,
                                                                NAME), type="MODIFIED"))
    status = state.kube.stored("PaymentService", NAMESPACE, NAME)["status"]
    assert status.get("lastHandledCommandAt")


def test_a_pass_that_asks_for_a_requeue_is_run_again_then(state, posted, monkeypatch):
    obj = _add_ps(state)
    triggers: list[str] = []
    again = threading.Event()
    real = reconcile._measured_pass

    def measured(kube, namespace, name, ctx, kafka_admins, trigger, prune, now, *policy):
        triggers.append(trigger)
        outcome = real(kube, namespace, name, ctx, kafka_admins, trigger, prune, now, *policy)
        if trigger == "requeue":
            again.set()
            return outcome
        outcome.requeue_after = 0.05
        return outcome

    monkeypatch.setattr(reconcile, "_measured_pass", measured)
    started = time.monotonic()
    handlers.on_change(state, **_kopf_kwargs(obj, reason="create", retry=0))
    assert state.scheduler.due_in(KEY) is not None
    assert again.wait(5)
    assert time.monotonic() - started >= 0.05
    assert triggers == ["create", "requeue"]
    assert state.scheduler.due_in(KEY) is None  # the requeued pass asked for nothing more


def test_deleting_the_object_cancels_its_requeue(state):
    fired = threading.Event()
    state.scheduler.schedule(KEY, 0.1, fired.set)
    obj = _add_ps(state)
    handlers.on_delete(state, **_kopf_kwargs(obj))
    assert state.scheduler.due_in(KEY) is None
    assert not fired.wait(0.3)


def test_a_child_event_reconciles_its_owner(state, posted):
    _add_ps(state)
    child = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "x", "namespace": NAMESPACE,
                          "labels": {handlers.OWNER_LABEL: NAME}}}
    asyncio.run(_child_events(state, [(child, None), ({"metadata": {"name": "y"}}, None)]))
    assert state.kube.writes()
    state.kube.calls.clear()
    asyncio.run(_child_events(state, [({"metadata": {"name": "y"}}, None)]))
    assert state.kube.calls == []


async def _child_events(state, events):
    """Deliver watch events as Kopf would, then let the owners' passes run to the end."""
    for body, type_ in events:
        await handlers.on_child_event(state, body=kopf.Body(body), type=type_)
    for _ in range(200):
        await asyncio.sleep(0.01)
        if not len(state.owners) and not len(state.coalescer):
            break
    state.owners.close()


def test_a_burst_of_child_events_is_one_pass_per_owner_and_a_lost_label_is_seen(state, posted):
    _add_ps(state)
    runs = []
    state.owners.mark = lambda key, work: runs.append(key)  # what the runners would run

    def child(name, rv, **labels):
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": str(rv),
                             "labels": labels}, "data": {"v": str(rv)}}

    ours = {handlers.OWNER_LABEL: NAME, handlers.LABEL_MANAGED_BY: handlers.MANAGED_BY}
    asyncio.run(handlers.on_child_event(state, body=kopf.Body(child("a", 1, **ours))))
    asyncio.run(handlers.on_child_event(state, body=kopf.Body(child("a", 1, **ours)),
                                        type="MODIFIED"))  # nothing new: no pass
    assert runs == [(NAMESPACE, NAME)]
    # It lost our labels: the selected watch says DELETED with the new, unlabelled body.
    asyncio.run(handlers.on_child_event(state, body=kopf.Body(child("a", 2)), type="DELETED"))
    assert runs == [(NAMESPACE, NAME)] * 2 and not len(state.children)
    asyncio.run(handlers.on_child_event(state, body=kopf.Body(child("b", 3)), type="DELETED"))
    assert len(runs) == 2  # never ours, never cached: nobody to reconcile


def test_the_owner_queue_runs_each_owner_once_in_marking_order():
    from payment_operator.owners import OwnerQueue

    async def scenario():
        queue = OwnerQueue(runners=1)
        done = []
        for key in ("a", "b", "a", "c"):
            queue.mark(key, lambda key=key: done.append(key))
        assert len(queue) == 3
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(done) == 3:
                break
        queue.mark("boom", lambda: 1 / 0)  # logged; the runner goes on
        queue.mark("d", lambda: done.append("d"))
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(done) == 4:
                break
        queue.close()
        return done

    assert asyncio.run(scenario()) == ["a", "b", "c", "d"]


# ---- Kafka topics on deletion (topicProvisioner admin) ------------------------------------

ADMIN_KAFKA = {"bootstrapServers": "kafka:9092", "topicProvisioner": "admin",
               "topics": [{"name": "payment.events", "replicas": 1}, {"name": "audit"}]}


def _deleting(state: OperatorState, cluster: FakeKafka, **kafka) -> dict:
    state.kafka_admins = fake_kafka.admins(cluster)[0]
    body = minimal_body(kafka={**ADMIN_KAFKA, **kafka})
    body["metadata"]["deletionTimestamp"] = "2025-01-02T03:04:05Z"
    return body


def test_the_admin_timeout_is_a_setting_of_ten_seconds_by_default(monkeypatch):
    assert Settings().kafka_admin_timeout_seconds == 10.0
    monkeypatch.setenv("PAYDECK_KAFKA_ADMIN_TIMEOUT_SECONDS", "2.5")
    state = OperatorState.from_settings(Settings(), FakeKube())
    assert state.kafka_admins.timeout == 2.5
    assert state.kafka_admins.bootstraps() == []  # clients are made on first use only


def test_retained_topics_are_left_on_deletion(state, posted):
    cluster = FakeKafka(topics={"payment.events": {"partitions": 3, "replicas": 1, "config": {}}})
    body = _deleting(state, cluster)  # topicDeletionPolicy defaults to Retain
    handlers.on_delete(state, **_kopf_kwargs(body))
    assert cluster.calls == [] and "payment.events" in cluster.topics
    assert posted == []


def test_topics_are_deleted_with_the_delete_policy(state, posted):
    cluster = FakeKafka(topics={"payment.events": {"partitions": 3, "replicas": 1, "config": {}},
                                "foreign": {"partitions": 1, "replicas": 1, "config": {}}})
    body = _deleting(state, cluster, topicDeletionPolicy="Delete")
    handlers.on_delete(state, **_kopf_kwargs(body))  # "audit" never existed: fine
    assert cluster.writes() == ["delete_topics"]
    assert list(cluster.topics) == ["foreign"]
    assert posted == [("Normal", "KafkaTopicsDeleted")]


def test_an_unreachable_kafka_holds_the_deletion_a_few_times_then_lets_go(state, posted):
    cluster = FakeKafka(down=True)
    body = _deleting(state, cluster, topicDeletionPolicy="Delete")
    with pytest.raises(kopf.TemporaryError) as caught:
        handlers.on_delete(state, **_kopf_kwargs(body, retry=0))
    assert "_TIMED_OUT" in str(caught.value)
    assert posted == [("Warning", "KafkaTopicsNotDeleted")]
    posted.clear()

    handlers.on_delete(state, **_kopf_kwargs(body, retry=handlers.TOPIC_DELETE_ATTEMPTS - 1))
    assert posted == [("Warning", "KafkaTopicsNotDeleted"), ("Warning", "KafkaTopicsLeft")]


def test_stop_closes_the_kafka_admin_clients(state):
    closed = []

    class Client(FakeKafka):
        def __exit__(self, *exc):
            closed.append(exc)

    state.kafka_admins = AdminClients(1.0, factory=lambda config: Client())
    state.kafka_admins.get("a:9092")
    state.kafka_admins.get("b:9092")
    state.kafka_admins.get("a:9092")
    handlers.stop(state)
    assert closed == [(None, None, None)] * 2
    assert state.kafka_admins.bootstraps() == []


# ---- KafkaTopics in the Strimzi cluster's namespace (owned by labels) ---------------------

STRIMZI_NS = "kafka"


def _strimzi_service(state: OperatorState, policy: str = "Retain") -> dict:
    state.kube.apis = {"kafka.strimzi.io/v1"}
    body = minimal_body(
        database={"url": {"secretRef": {"name": "db", "key": "url"}},
                  "migrations": {"enabled": False}},
        kafka={"bootstrapServers": "kafka:9092", "topicProvisioner": "strimzi",
               "topicDeletionPolicy": policy,
               "strimzi": {"clusterName": "main", "namespace": STRIMZI_NS},
               "topics": [{"name": "payment.events"}, {"name": "audit"}]})
    return state.kube.add(body)


def _remote_topics(state: OperatorState) -> dict[str, dict]:
    return {name: obj for (kind, ns, name), obj in state.kube.objects.items()
            if kind == "KafkaTopic" and ns == STRIMZI_NS}


def _foreign_topic(name: str, uid: str | None = None) -> dict:
    labels = {"app.kubernetes.io/managed-by": "paydeck-operator"}
    if uid:
        labels["paydeck.dev/owner-uid"] = uid
    return {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic",
            "metadata": {"name": name, "namespace": STRIMZI_NS, "labels": labels},
            "spec": {"partitions": 1}}


def test_kafka_topics_in_the_strimzi_namespace_are_created_and_their_events_map_home(state, posted):
    obj = _strimzi_service(state)
    handlers.on_change(state, **_kopf_kwargs(obj, reason="create", retry=0))
    topics = _remote_topics(state)
    assert sorted(topics) == [f"{NAMESPACE}.{NAME}-audit", f"{NAMESPACE}.{NAME}-payment.events"]
    uid = obj["metadata"]["uid"]
    assert all(t["metadata"]["labels"]["paydeck.dev/owner-uid"] == uid for t in topics.values())
    # An event there reconciles the owner in its own namespace (the label says which).
    state.kube.objects[("PaymentService", NAMESPACE, NAME)].pop("status")
    topic = next(iter(topics.values()))
    # The event of the pass's own write brings nothing new: it triggers no pass.
    asyncio.run(_child_events(state, [(topic, "ADDED")]))
    assert "status" not in state.kube.stored("PaymentService", NAMESPACE, NAME)
    ready = {**topic, "metadata": {**topic["metadata"], "resourceVersion": "999999"},
             "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    asyncio.run(_child_events(state, [(ready, "MODIFIED")]))
    assert state.kube.stored("PaymentService", NAMESPACE, NAME)["status"]["conditions"]


def test_unwanted_label_owned_topics_are_pruned_and_foreign_ones_never(state, posted):
    obj = _strimzi_service(state)
    uid = obj["metadata"]["uid"]
    state.kube.add(_foreign_topic("theirs"))
    state.kube.add(_foreign_topic("another-services", uid="00000000-0000-4000-8000-0000000000ff"))
    state.kube.add(_foreign_topic("ours-stale", uid=uid))
    # Reconciled before (only a pass makes a topic of its uid): the next pass prunes.
    state.kube.objects[("PaymentService", NAMESPACE, NAME)]["status"] = {"observedGeneration": 1}
    obj = state.kube.stored("PaymentService", NAMESPACE, NAME)  # as Kopf would hand it over
    handlers.on_change(state, **_kopf_kwargs(obj, reason="update", retry=0))
    assert sorted(_remote_topics(state)) == sorted([
        f"{NAMESPACE}.{NAME}-audit", f"{NAMESPACE}.{NAME}-payment.events",
        "another-services", "theirs"])


def test_the_first_pass_of_a_new_object_lists_nothing_to_prune_and_later_ones_do(state, posted):
    obj = _add_ps(state)
    handlers.on_change(state, **_kopf_kwargs(obj, reason="create", retry=0))
    lists = [kind for verb, kind, _ in state.kube.calls if verb == "list"]
    assert lists == []  # no revision to list, nothing of its uid to prune: none can exist
    # Nor a GET of a child: each create is conditional on the name being free.
    assert [c for c in state.kube.calls if c[0] == "get" and c[1] != "PaymentService"] == []
    assert {"ConfigMap", "Service", "Deployment"} <= state.kube.kinds()
    assert state.kube.stored("PaymentService", NAMESPACE, NAME)["status"]["observedGeneration"]
    state.kube.calls.clear()
    handlers.on_change(state, **_kopf_kwargs(obj, reason="resume", retry=0))
    pruned = {kind for verb, kind, _ in state.kube.calls if verb == "list"} - {"Deployment"}
    assert {"ConfigMap", "Service", "ServiceAccount", "PodDisruptionBudget"} <= pruned


def test_a_pass_reads_a_migration_job_only_while_a_migration_is_wanted(state, posted):
    obj = _add_ps(state)  # migrations off: no Job to decide from, none read
    handlers.on_change(state, **_kopf_kwargs(obj, reason="create", retry=0))
    for _ in range(2):
        handlers.on_change(state, **_kopf_kwargs(obj, reason="resume", retry=0))
    assert [c for c in state.kube.calls if c[1] == "Job" and c[0] == "get"] == []
    # Migrations on, the Job not done: the pass reads it (here, after creating it).
    spec = state.kube.objects[("PaymentService", NAMESPACE, NAME)]["spec"]
    spec["database"]["migrations"] = {"enabled": True}
    state.kube.touch("PaymentService", NAMESPACE, NAME)
    obj = _delivered(state)
    state.kube.calls.clear()
    handlers.on_change(state, **_kopf_kwargs(obj, reason="update", retry=0))
    handlers.on_change(state, **_kopf_kwargs(obj, reason="resume", retry=0))
    assert "Job" in state.kube.kinds()
    assert [c for c in state.kube.calls if c[1] == "Job" and c[0] == "get"]


def test_passes_read_their_object_from_the_watch_and_its_own_writes_but_fresh_ones_get_it(
        state, posted):
    obj = _add_ps(state)
    asyncio.run(handlers.on_parent_event(state, body=kopf.Body(obj), type="ADDED"))
    handlers.on_change(state, **_kopf_kwargs(obj, reason="create", retry=0))
    handlers.child_pass(state, NAMESPACE, NAME)  # as after a child's event
    handlers.requeue(state, NAMESPACE, NAME)
    assert ("get", "PaymentService", NAME) not in state.kube.calls
    # The second pass started from the status the first one wrote (nothing new to write).
    assert [c for c in state.kube.writes() if c[0] == "patch_status"] == [
        ("patch_status", "PaymentService", NAME)]
    state.kube.calls.clear()
    stored = state.kube.stored("PaymentService", NAMESPACE, NAME)
    state.fresh_reads.fresh_seconds = 0  # every timer pass reads afresh
    handlers.resync(state, **_kopf_kwargs(stored))
    assert ("get", "PaymentService", NAME) in state.kube.calls
    # Deleted: a pass finds nothing in memory and asks the API server.
    asyncio.run(handlers.on_parent_event(state, body=kopf.Body(stored), type="DELETED"))
    state.kube.calls.clear()
    handlers.child_pass(state, NAMESPACE, NAME)
    assert state.kube.calls[0] == ("get", "PaymentService", NAME)


def test_a_new_objects_child_whose_name_is_taken_is_found_and_left_alone(state, posted):
    obj = _add_ps(state)
    theirs = state.kube.add({"apiVersion": "v1", "kind": "ServiceAccount",
                             "metadata": {"name": NAME, "namespace": NAMESPACE,
                                          "labels": {"team": "theirs"}}})
    with pytest.raises(kopf.TemporaryError, match="not owned by this PaymentService"):
        handlers.on_change(state, **_kopf_kwargs(obj, reason="create", retry=0))
    assert state.kube.stored("ServiceAccount", NAMESPACE, NAME) == theirs  # untouched
    assert ("get", "ServiceAccount", NAME) in state.kube.calls  # read once the create failed
    assert "Deployment" not in state.kube.kinds()
    status = state.kube.stored("PaymentService", NAMESPACE, NAME)["status"]
    assert "ConflictingObject" in str(status["conditions"])


def test_a_foreign_topic_of_a_wanted_name_is_a_conflict(state, posted):
    obj = _strimzi_service(state)
    state.kube.add(_foreign_topic(f"{NAMESPACE}.{NAME}-audit"))
    with pytest.raises(kopf.TemporaryError, match="not owned by this PaymentService"):
        handlers.on_change(state, **_kopf_kwargs(obj, reason="create", retry=0))
    assert "paydeck.dev/owner-uid" not in (
        _remote_topics(state)[f"{NAMESPACE}.{NAME}-audit"]["metadata"]["labels"])


@pytest.mark.parametrize(("policy", "left", "event"), [
    ("Delete", [], "KafkaTopicsDeleted"),
    ("Retain", [f"{NAMESPACE}.{NAME}-audit", f"{NAMESPACE}.{NAME}-payment.events"],
     "KafkaTopicsRetained"),
])
def test_deletion_applies_the_policy_to_label_owned_topics_only(state, posted, policy, left,
                                                                 event):
    obj = _strimzi_service(state, policy)
    handlers.on_change(state, **_kopf_kwargs(obj, reason="create", retry=0))
    state.kube.add(_foreign_topic("theirs"))
    body = state.kube.stored("PaymentService", NAMESPACE, NAME)
    body["metadata"]["deletionTimestamp"] = "2025-01-02T03:04:05Z"
    posted.clear()
    handlers.on_delete(state, **_kopf_kwargs(body))
    assert sorted(_remote_topics(state)) == sorted([*left, "theirs"])
    assert posted == [("Normal", event)]


def test_admin_delete_also_deletes_label_owned_topics_left_from_a_strimzi_spec(state, posted):
    cluster = FakeKafka(topics={"payment.events": {"partitions": 3, "replicas": 1, "config": {}}})
    body = _deleting(state, cluster, topicDeletionPolicy="Delete")
    state.kube.apis = {"kafka.strimzi.io/v1"}
    state.kube.add(_foreign_topic("left-over", uid=body["metadata"]["uid"]))
    state.kube.add(_foreign_topic("theirs"))
    handlers.on_delete(state, **_kopf_kwargs(body))
    assert sorted(_remote_topics(state)) == ["theirs"]
    assert "payment.events" not in cluster.topics
    assert posted == [("Normal", "KafkaTopicsDeleted"), ("Normal", "KafkaTopicsDeleted")]
