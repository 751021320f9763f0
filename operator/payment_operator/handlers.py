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
from payment_operator.kube import resources
from payment_operator.kube.client import Kube, KubeError
from payment_operator.kube.discovery import CapabilityCache
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


def _event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Post one Kubernetes Event about a PaymentService (Kopf batches and posts it)."""
    kopf.event(cast(kopf.Body, dict(body)), type=type_, reason=reason, message=message)


def _post(body: Mapping[str, Any], outcome: reconcile.Outcome) -> None:
    for event in outcome.events:
        _event(body, event.type, event.reason, event.message)


def _run(body: Mapping[str, Any], trigger: str, prune: bool) -> reconcile.Outcome:
    try:
        outcome = reconcile.reconcile(
            Runtime.client(), body, Runtime.context(), trigger=trigger, prune_children=prune
        )
    except KubeError as err:
        failure = reconcile.failure_of(err)
        _event(body, "Warning", failure.reason, failure.message)
        raise kopf.TemporaryError(f"{failure.reason}: {failure.message}", delay=10) from err
    _post(body, outcome)
    return outcome


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def on_change(body: kopf.Body, reason: str, retry: int, **_: Any) -> None:
    outcome = _run(body, trigger=str(reason), prune=True)
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
        _run(body, trigger="resync", prune=False)
    except kopf.TemporaryError as err:
        log.warning("resync of %s/%s failed: %s", meta.namespace, meta.name, err)


@kopf.on.delete(GROUP, VERSION, PLURAL)
def on_delete(meta: kopf.Meta, **_: Any) -> None:
    """Children go through garbage collection (owner references); only say goodbye."""
    reconcile.forget(str(meta.namespace), str(meta.name))
    log.info("%s/%s deleted; garbage collection removes its children", meta.namespace, meta.name)


def on_child_event(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
    """A child changed or vanished: reconcile its owner now instead of at the next resync."""
    labels = body.get("metadata", {}).get("labels", {})
    owner, namespace = labels.get(OWNER_LABEL), body.get("metadata", {}).get("namespace")
    if not owner or not namespace:
        return
    try:
        parent = Runtime.client().get(resources.PAYMENT_SERVICE, namespace, owner)
    except KubeError as err:
        log.warning("cannot read %s/%s: %s", namespace, owner, err)
        return
    if parent is None or parent["metadata"].get("deletionTimestamp"):
        return
    try:
        _run(parent, trigger="child", prune=False)
    except kopf.TemporaryError as err:
        log.warning("reconcile of %s/%s after a child event failed: %s", namespace, owner, err)


for _group, _version, _plural in (
    ("", "v1", "serviceaccounts"),
    ("", "v1", "configmaps"),
    ("", "v1", "services"),
    ("apps", "v1", "deployments"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("networking.k8s.io", "v1", "networkpolicies"),
    ("networking.k8s.io", "v1", "ingresses"),
):
    if _group:
        kopf.on.event(_group, _version, _plural, labels=MANAGED)(on_child_event)
    else:
        kopf.on.event(_version, _plural, labels=MANAGED)(on_child_event)
