"""Kopf glue: configure Kopf for GitOps, and route every trigger to :func:`reconcile.reconcile`.

:func:`register` binds every handler to the process's :class:`OperatorState` and registers it
in the registry ``main()`` passes to ``kopf.run``, so values such as the drift-timer interval
come from the settings read at start-up.  Kopf keeps its progress and diff base in
``status.kopf`` (never in annotations, never in spec; the diff base as a digest, see
:mod:`payment_operator.diffbase`), uses the finalizer
``paydeck.dev/finalizer``, and posts only the Events we mean.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any, cast

import kopf

from payment_operator import observability, reconcile
from payment_operator.builders.meta import LABEL_MANAGED_BY, MANAGED_BY
from payment_operator.diffbase import DigestDiffBaseStorage
from payment_operator.kube import cache, resources
from payment_operator.kube.client import KubeError
from payment_operator.kube.errors import failure_of
from payment_operator.state import OperatorState

GROUP, VERSION, PLURAL = "paydeck.dev", "v1alpha1", "paymentservices"
FINALIZER = "paydeck.dev/finalizer"
#: The label selector of the children's watches (applied by the API server).
MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
#: Seconds a Kopf object worker with nothing to do stays (Kopf's default is 5).
WORKER_IDLE_SECONDS = 0.5
#: Kopf's concurrent Event posters.
POSTING_WORKERS = 4
OWNER_LABEL = "paydeck.dev/paymentservice"
OWNER_NAMESPACE_LABEL = "paydeck.dev/owner-namespace"
#: Seconds before a requeue that failed to reach the API server is tried again.
REQUEUE_RETRY_SECONDS = 10.0
#: Attempts at deleting a PaymentService's Kafka topics (topicDeletionPolicy Delete), and the
#: seconds between them, before the finalizer is released anyway (with a Warning Event).
TOPIC_DELETE_ATTEMPTS = 6
TOPIC_DELETE_RETRY_SECONDS = 10.0

#: Phases in which every drift-timer pass runs; in the others (Progressing: passes follow
#: the service's own events) one within an interval of the last pass is skipped.
SETTLED_PHASES = frozenset({"Healthy", "Degraded", "Paused"})

log = logging.getLogger("paydeck.handlers")


def register(registry: kopf.OperatorRegistry, state: OperatorState) -> None:
    """Register every handler of the operator in ``registry``, bound to ``state``.

    Handlers are module functions taking ``state`` first (bound with ``functools.partial``),
    so their Kopf ids (``on_change``, ``resync`` ...) stay the function names.
    """
    # A registry of our own has none of the default registry's fallback logins: log in the
    # way Kopf would by default here (in-cluster credentials, else the kubeconfig).
    kopf.on.login(registry=registry, errors=kopf.ErrorsMode.IGNORED)(kopf.login_via_client)
    kopf.on.startup(registry=registry)(partial(configure, state))
    kopf.on.cleanup(registry=registry)(partial(stop, state))
    change = partial(on_change, state)
    for on in (kopf.on.resume, kopf.on.create, kopf.on.update):
        on(GROUP, VERSION, PLURAL, registry=registry)(change)
    every = state.settings.resync_seconds
    kopf.timer(GROUP, VERSION, PLURAL, interval=every, initial_delay=every, sharp=False,
               registry=registry)(partial(resync, state))
    kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)(partial(on_delete, state))
    # Every event of a PaymentService, before the other handlers of the same event (Kopf runs
    # event handlers first, in this order): passes read their object from memory.
    kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)(partial(on_parent_event, state))
    kopf.on.event(GROUP, VERSION, PLURAL, when=_command_waiting, registry=registry)(
        partial(on_command, state)
    )
    # Drift on every child is seen at once, also on optional APIs (ServiceMonitor,
    # ExternalSecret, ...): Kopf watches those once their CRDs exist (it follows CRDs), and an
    # ExternalSecret or KafkaTopic turning Ready opens its gate without waiting for a timer.
    # The watches select our children on the server (``configure``): no other object of
    # these kinds reaches the operator, and one that loses our labels arrives as DELETED.
    for resource in resources.CHILDREN:
        group, _, version = resource.api_version.rpartition("/")
        kopf.on.event(group, version, resource.plural, registry=registry)(
            partial(on_child_event, state)
        )


def configure(state: OperatorState, settings: kopf.OperatorSettings, **_: Any) -> None:
    """Kopf's own settings, at start-up: storage in status, finalizer, Events, peering."""
    own = state.settings
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = DigestDiffBaseStorage(
        field="status.kopf.last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.posting.loggers = False  # only the Events we post on purpose
    settings.queueing.worker_limit = own.worker_limit
    # A child's worker is done as soon as its event is cached (``on_child_event``): let it
    # go at once instead of holding a task and a queue per child for Kopf's default 5 s.
    settings.queueing.idle_timeout = WORKER_IDLE_SECONDS
    settings.execution.max_workers = own.thread_workers
    state.owners.executor = settings.execution.executor
    # Events are posted by a few workers (one HTTP connection each), not one per object.
    settings.posting.worker_limit = POSTING_WORKERS
    for resource in resources.CHILDREN:
        settings.watching.label_selectors[resource.api_version, resource.plural] = (
            MANAGED_SELECTOR
        )
    settings.watching.server_timeout = own.watch_server_timeout_seconds
    settings.watching.client_timeout = own.watch_client_timeout_seconds
    settings.networking.request_timeout = own.request_timeout_seconds
    settings.peering.name = own.peering_name
    settings.peering.priority = (
        own.priority if own.priority is not None else random.randint(1, 10_000)
    )
    settings.peering.stealth = True
    # Replicas must not fall back to standalone (and fight) if the peering object is missing.
    settings.peering.mandatory = not own.standalone
    # Given exact namespaces, Kopf needs nothing cluster-wide: without scanning it neither
    # lists Namespaces (only patterns need that) nor watches CRDs (it finds the PaymentService
    # API at start-up through discovery), so the namespaced install grants only Roles.
    settings.scanning.disabled = bool(own.namespaces) and all(
        _exact_namespace(ns) for ns in own.namespaces
    )


def _exact_namespace(pattern: str) -> bool:
    """Whether a Kopf namespace pattern names one namespace (no glob, no negation)."""
    return not any(char in pattern for char in "*?[]!,")


def stop(state: OperatorState, **_: Any) -> None:
    """The operator stops: no requeue fires any more, no owner waits for a pass; the Kafka
    admin clients are closed."""
    state.scheduler.close()
    state.owners.close()
    state.kafka_admins.close()


def _event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Post one Kubernetes Event about a PaymentService (Kopf batches and posts it)."""
    kopf.event(cast(kopf.Body, dict(body)), type=type_, reason=reason, message=message)


def _post(body: Mapping[str, Any], outcome: reconcile.Outcome) -> None:
    about = outcome.obj or body
    for event in outcome.events:
        _event(about, event.type, event.reason, event.message)


def _run(
    state: OperatorState, meta: Mapping[str, Any], body: Mapping[str, Any], trigger: str,
    prune: bool, wait: bool = True, fresh: bool = False,
) -> reconcile.Outcome:
    """One reconcile of the object; post its Events and schedule the requeue it asks for.
    With ``fresh`` the pass reads the object and every child from the API server, not
    the caches."""
    namespace, name = str(meta["namespace"]), str(meta["name"])
    try:
        outcome = reconcile.reconcile(
            state.kube, state.coalescer, namespace, name, state.context(),
            kafka_admins=state.kafka_admins, trigger=trigger, prune_children=prune, wait=wait,
            platform_policy=state.settings.platform_policy,
            cache=state.children.reading_around() if fresh else state.children,
            parents=None if fresh else state.parents,
        )
    except KubeError as err:
        # The API server is unreachable or failing: there is no status to write it to.
        raise kopf.TemporaryError(f"{failure_of(err).reason}: {err}", delay=10) from err
    if not outcome.coalesced:  # this caller ran the pass (a coalesced one left it to another)
        state.fresh_reads.passed((namespace, name))
    _post(body, outcome)
    if outcome.requeue_after is not None:
        state.scheduler.schedule(
            (namespace, name), outcome.requeue_after, partial(requeue, state, namespace, name)
        )
    return outcome


def _parent(namespace: str, name: str) -> tuple[dict[str, str], dict[str, Any]]:
    """The meta and a minimal body of a PaymentService known only by name (Events need one)."""
    meta = {"name": name, "namespace": namespace}
    return meta, {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PaymentService", "metadata": meta}


def on_change(
    state: OperatorState, body: kopf.Body, meta: kopf.Meta, reason: str, retry: int, **_: Any
) -> None:
    """Create, update (of spec) and resume: reconcile, waiting for a pass of our own."""
    state.parents.offer(body)  # what Kopf hands over is as new as its watch
    outcome = _run(state, meta, body, trigger=str(reason), prune=True)
    if outcome.failure is not None:
        # Even "permanent" failures (a quota, missing RBAC) get fixed by humans: keep trying,
        # backing off, while the status says Stalled.
        raise kopf.TemporaryError(outcome.failure.message, delay=retry_delay(retry))


def retry_delay(retry: int) -> float:
    """Back-off for failed reconciles: 5 s, 10 s, 20 s ... at most 2 minutes."""
    return float(min(5 * 2 ** min(retry, 10), 120))


def resync(state: OperatorState, body: kopf.Body, meta: kopf.Meta, **_: Any) -> None:
    """Drift check: writes nothing when nothing drifted. Now and then
    (:mod:`~payment_operator.fresh_reads`) it reads every child afresh: what a watch missed
    is seen there."""
    if meta.get("deletionTimestamp"):
        return
    state.parents.offer(body)
    key = (str(meta["namespace"]), str(meta["name"]))
    fresh = state.fresh_reads.due(key)
    settled = (body.get("status") or {}).get("phase") in SETTLED_PHASES
    if not fresh and not settled and state.fresh_reads.passed_within(
            key, state.settings.resync_seconds):
        return  # progressing: a pass just read all this pass would (fresh_reads)
    try:
        # A fresh pass waits for one of its own (coalesced into a running pass, it would
        # read the cache); one that reads the cache may join a running pass.
        _run(state, meta, body, trigger="resync", prune=False, wait=fresh, fresh=fresh)
        if fresh:
            state.fresh_reads.done(key)
    except kopf.TemporaryError as err:
        log.warning("resync of %s/%s failed: %s", meta.namespace, meta.name, err)


def requeue(state: OperatorState, namespace: str, name: str) -> None:
    """A pass asked to run again now (the end of a pause, say): reconcile without waiting."""
    meta, body = _parent(namespace, name)
    try:
        _run(state, meta, body, trigger="requeue", prune=False, wait=False)
    except kopf.TemporaryError as err:
        log.warning("requeue of %s/%s failed, again in %.0fs: %s",
                    namespace, name, REQUEUE_RETRY_SECONDS, err)
        state.scheduler.schedule(
            (namespace, name), REQUEUE_RETRY_SECONDS, partial(requeue, state, namespace, name)
        )


def on_delete(
    state: OperatorState, body: kopf.Body, meta: kopf.Meta, retry: int = 0, **_: Any
) -> None:
    """Children go through garbage collection (owner references); drop the pending requeue.

    With topicDeletionPolicy Delete the Kafka topics are deleted first; while the cluster
    does not answer (or refuses) the finalizer stays, for :data:`TOPIC_DELETE_ATTEMPTS`
    attempts, and is then released with a Warning Event saying the topics are left.
    """
    state.scheduler.cancel((str(meta.namespace), str(meta.name)))
    state.fresh_reads.forget((str(meta.namespace), str(meta.name)))
    outcome = reconcile.delete_topics(state.kafka_admins, state.coalescer, body,
                                      kube=state.kube, ctx=state.context())
    _post(body, outcome)
    if outcome.failure is not None:
        if retry + 1 < TOPIC_DELETE_ATTEMPTS:
            raise kopf.TemporaryError(outcome.failure.message, delay=TOPIC_DELETE_RETRY_SECONDS)
        _event(body, "Warning", "KafkaTopicsLeft",
               f"gave up after {retry + 1} attempts, the topics stay: {outcome.failure.message}")
    log.info("%s/%s deleted; garbage collection removes its children", meta.namespace, meta.name)


def command_pending(status: Mapping[str, Any] | None) -> bool:
    """Whether ``status.command`` is one the operator has not carried out yet.

    Users write ``status.command`` through the status subresource, so no spec change (and no
    update handler) follows; the command is new while its ``requestedAt`` differs from
    ``lastHandledCommandAt`` (compared as instants, not as strings).
    """
    status = status or {}
    requested = (status.get("command") or {}).get("requestedAt")
    if not requested:
        return False
    handled = status.get("lastHandledCommandAt")
    return handled is None or _instant(requested) != _instant(handled)


def _instant(value: Any) -> datetime | str:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)


def _command_waiting(status: kopf.Status, **_: Any) -> bool:
    return command_pending(status)


def on_command(
    state: OperatorState, body: kopf.Body, meta: kopf.Meta, type: str | None, **_: Any
) -> None:
    """A user command waits in status: reconcile without waiting (the pass carries it out)."""
    if type == "DELETED" or meta.get("deletionTimestamp"):
        return
    state.parents.offer(body)  # the pass must see the command, whichever handler ran first
    try:
        _run(state, meta, body, trigger="command", prune=False, wait=False)
    except kopf.TemporaryError as err:
        log.warning("reconcile of %s/%s for a command failed: %s", meta.namespace, meta.name, err)


async def on_parent_event(
    state: OperatorState, body: kopf.Body, type: str | None = None, **_: Any
) -> None:
    """Remember the PaymentService as this event has it (:mod:`payment_operator.kube.parents`)."""
    if type == "DELETED":
        state.parents.deleted(body)
    else:
        state.parents.offer(body)


async def on_child_event(
    state: OperatorState, body: kopf.Body, type: str | None = None, **_: Any
) -> None:
    """A child changed or vanished: remember it, and have its owner reconciled now instead
    of at the next resync (:mod:`payment_operator.owners`; the pass reads the child from
    :attr:`OperatorState.children`).

    An event that changes nothing a pass reads (a PDB's status, a Job's pod counts) only
    updates the cache. A DELETED event may be of a child that lost our labels (it left the
    watch's selector): its owner is the one its cached copy named.
    """
    owner = child_owner(state, body, type)
    if owner is not None:
        state.owners.mark(owner, partial(child_pass, state, *owner))


def child_owner(
    state: OperatorState, body: Mapping[str, Any], type: str | None
) -> tuple[str, str] | None:
    """Take a child's event into the cache; the owner (namespace, name) whose pass it asks
    for, or None (nothing a pass reads changed, or no owner is named)."""
    kind = str(body.get("kind", ""))
    before = state.children.forget(body) if type == "DELETED" else None
    if type != "DELETED" and not state.children.observe(type, body):
        observability.CHILD_EVENTS.labels(kind, "cached").inc()
        return None
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    if type == "DELETED" and not cache.managed(body):  # relabelled: its last labels say
        labels = (before or {}).get("metadata", {}).get("labels") or {}
    # A child in another namespace (a KafkaTopic in Strimzi's) names its owner's namespace.
    owner = labels.get(OWNER_LABEL)
    namespace = labels.get(OWNER_NAMESPACE_LABEL) or meta.get("namespace")
    if not owner or not namespace:
        return None
    observability.CHILD_EVENTS.labels(kind, "reconcile").inc()
    return str(namespace), str(owner)


def child_pass(state: OperatorState, namespace: str, owner: str) -> None:
    """The owner's pass after a child event (in a thread); never waits: if a pass for the
    owner is running, it is told to go round once more."""
    parent_meta, parent = _parent(namespace, owner)
    try:
        outcome = _run(state, parent_meta, parent, trigger="child", prune=False, wait=False)
    except kopf.TemporaryError as err:
        log.warning("reconcile of %s/%s after a child event failed: %s", namespace, owner, err)
        failed = True
    else:
        failed = outcome.failure is not None and outcome.failure.retryable
    if failed:  # no later event may come (its own write's is not news): try again soon
        state.scheduler.schedule(
            (namespace, owner), REQUEUE_RETRY_SECONDS, partial(requeue, state, namespace, owner)
        )
