"""Kopf glue: configure Kopf for GitOps, and route every trigger to :func:`reconcile.reconcile`.

Kopf keeps its progress and diff base in ``status.kopf`` (never in annotations, never in
spec), uses the finalizer ``paydeck.dev/finalizer``, and posts only the Events we mean.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any, cast

import kopf

from payment_operator import builders, reconcile
from payment_operator.coalesce import Coalescer
from payment_operator.kube import resources
from payment_operator.kube.client import Kube, KubeError
from payment_operator.kube.discovery import CapabilityCache
from payment_operator.kube.errors import failure_of
from payment_operator.settings import Settings

GROUP, VERSION, PLURAL = "paydeck.dev", "v1alpha1", "paymentservices"
FINALIZER = "paydeck.dev/finalizer"
MANAGED = {"app.kubernetes.io/managed-by": "paydeck-operator"}
OWNER_LABEL = "paydeck.dev/paymentservice"

log = logging.getLogger("paydeck.handlers")


class Runtime:
    """Process-wide state set up at start-up: settings, API client, discovery cache."""

    settings: Settings = Settings()
    kube: Kube | None = None
    capabilities = CapabilityCache()
    coalescer: Coalescer[reconcile.Outcome] = Coalescer()

    @classmethod
    def client(cls) -> Kube:
        if cls.kube is None:
            cls.kube = Kube.from_environment()
        return cls.kube

    @classmethod
    def context(cls) -> builders.Context:
        cls.capabilities.ttl = cls.settings.discovery_ttl_seconds
        return builders.Context(
            capabilities=cls.capabilities.get(cls.client()),
            gateway_namespace=cls.settings.gateway_namespace,
        )


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    own = Runtime.settings
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(
        field="status.kopf.last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.posting.loggers = False  # only the Events we post on purpose
    settings.batching.worker_limit = own.worker_limit
    settings.execution.max_workers = own.thread_workers
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.peering.name = own.peering_name
    settings.peering.priority = (
        own.priority if own.priority is not None else random.randint(1, 10_000)
    )
    settings.peering.stealth = True
    # Replicas must not fall back to standalone (and fight) if the peering object is missing.
    settings.peering.mandatory = not own.standalone


def _event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Post one Kubernetes Event about a PaymentService (Kopf batches and posts it)."""
    kopf.event(cast(kopf.Body, dict(body)), type=type_, reason=reason, message=message)


def _post(body: Mapping[str, Any], outcome: reconcile.Outcome) -> None:
    about = outcome.obj or body
    for event in outcome.events:
        _event(about, event.type, event.reason, event.message)


def _run(
    meta: Mapping[str, Any], body: Mapping[str, Any], trigger: str, prune: bool, wait: bool = True
) -> reconcile.Outcome:
    try:
        outcome = reconcile.reconcile(
            Runtime.client(), Runtime.coalescer, str(meta["namespace"]), str(meta["name"]),
            Runtime.context(),
            trigger=trigger, prune_children=prune, wait=wait,
        )
    except KubeError as err:
        # The API server is unreachable or failing: there is no status to write it to.
        raise kopf.TemporaryError(f"{failure_of(err).reason}: {err}", delay=10) from err
    _post(body, outcome)
    return outcome


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def on_change(body: kopf.Body, meta: kopf.Meta, reason: str, retry: int, **_: Any) -> None:
    outcome = _run(meta, body, trigger=str(reason), prune=True)
    if outcome.failure is not None:
        # Even "permanent" failures (a quota, missing RBAC) get fixed by humans: keep trying,
        # backing off, while the status says Stalled.
        raise kopf.TemporaryError(outcome.failure.message, delay=retry_delay(retry))


def retry_delay(retry: int) -> float:
    """Back-off for failed reconciles: 5 s, 10 s, 20 s ... at most 2 minutes."""
    return float(min(5 * 2 ** min(retry, 10), 120))


@kopf.timer(GROUP, VERSION, PLURAL, interval=Runtime.settings.resync_seconds,
            initial_delay=Runtime.settings.resync_seconds, sharp=False)
def resync(body: kopf.Body, meta: kopf.Meta, **_: Any) -> None:
    """Drift check: writes nothing when nothing drifted."""
    if meta.get("deletionTimestamp"):
        return
    try:
        _run(meta, body, trigger="resync", prune=False, wait=False)
    except kopf.TemporaryError as err:
        log.warning("resync of %s/%s failed: %s", meta.namespace, meta.name, err)


@kopf.on.delete(GROUP, VERSION, PLURAL)
def on_delete(meta: kopf.Meta, **_: Any) -> None:
    """Children go through garbage collection (owner references): nothing to do but log."""
    log.info("%s/%s deleted; garbage collection removes its children", meta.namespace, meta.name)


def on_child_event(body: kopf.Body, **_: Any) -> None:
    """A child changed or vanished: reconcile its owner now instead of at the next resync.

    Never waits: if a pass for the owner is running, it is told to go round once more.
    """
    meta = body.get("metadata", {})
    owner, namespace = meta.get("labels", {}).get(OWNER_LABEL), meta.get("namespace")
    if not owner or not namespace:
        return
    parent_meta = {"name": owner, "namespace": namespace}
    parent = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PaymentService", "metadata": parent_meta}
    try:
        _run(parent_meta, parent, trigger="child", prune=False, wait=False)
    except kopf.TemporaryError as err:
        log.warning("reconcile of %s/%s after a child event failed: %s", namespace, owner, err)


# Drift on children every cluster serves is seen at once; children on optional APIs
# (ServiceMonitor, ExternalSecret, ...) are checked by the drift timer.
for _resource in resources.CORE_CHILDREN:
    _group, _, _version = _resource.api_version.rpartition("/")
    kopf.on.event(_group, _version, _resource.plural, labels=MANAGED)(on_child_event)
