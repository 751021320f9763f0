"""Bring children to their desired state: apply what drifted, prune what is no longer wanted.

A child is ours when its controller owner reference names this PaymentService; a child in
another namespace (a KafkaTopic in Strimzi's) has none and is ours when its owner-uid label
names this PaymentService (:func:`owner_uid`).  Nothing else is ever written or deleted.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from payment_operator.builders import meta as child_meta
from payment_operator.kube import drift, resources
from payment_operator.kube.cache import ChildCache, fresh_read, read
from payment_operator.kube.client import Kube, KubeError, Obj


@dataclass
class ApplyResult:
    """What one pass changed, and the live children afterwards (by kind and name).

    ``conflicts`` names the children that were not written because an object of that name
    exists and is not controlled by this PaymentService (see :func:`apply_all`);
    ``rescaled``, those of ``updated`` whose update changed only ``spec.replicas``.
    """

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    rescaled: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    live: dict[tuple[str, str], Obj] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)

    @property
    def writes(self) -> int:
        return len(self.created) + len(self.updated) + len(self.pruned)

    def raise_for_conflicts(self) -> None:
        """Raise :class:`ConflictingObjectError` if any child was left alone."""
        if self.conflicts:
            raise ConflictingObjectError(self.conflicts)


class ConflictingObjectError(Exception):
    """Objects named like children exist and are not controlled by this PaymentService."""

    def __init__(self, conflicts: Sequence[str]) -> None:
        super().__init__("; ".join(conflicts)[:1024])
        self.conflicts = list(conflicts)


#: Kinds whose pods use the other children (ServiceAccount, ConfigMap, secret bindings,
#: NetworkPolicy): not written while any other child is someone else's.
WORKLOAD_KINDS = frozenset({"Deployment", "Job"})


def _ref(manifest: Any) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


def controller_uid(obj: Obj) -> str | None:
    """The uid of the object's controlling owner, if it has one."""
    for owner in obj.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("controller"):
            return str(owner.get("uid"))
    return None


def _controller_name(obj: Obj) -> str:
    for owner in obj.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("controller"):
            return f"{owner.get('kind')}/{owner.get('name')}"
    return "none"


def owner_uid(obj: Obj) -> str | None:
    """The uid of the object's owner: its controller owner reference, or, for a label-owned
    child (no owner reference at all), its owner-uid label."""
    if obj.get("metadata", {}).get("ownerReferences"):
        return controller_uid(obj)
    return child_meta.label_owner_uid(obj)


def is_ours(live: Obj, desired: Obj) -> bool:
    """Whether ``live`` is owned by the owner the desired manifest names (as controller, or
    by label for a child in another namespace)."""
    wanted = owner_uid(desired)
    return wanted is not None and owner_uid(live) == wanted


def conflict_message(live: Obj, desired: Obj) -> str:
    """Why a child was not written, naming the object and its controller."""
    owner = _controller_name(live)
    if owner == "none" and (uid := child_meta.label_owner_uid(live)):
        owner = f"{child_meta.LABEL_OWNER_UID}={uid}"
    return (f"{_ref(desired)} exists and is not owned by this PaymentService"
            f" (owner: {owner})")


@dataclass
class _Child:
    stamped: dict[str, Any]
    resource: resources.Resource
    live: Obj | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.stamped["kind"], self.stamped["metadata"]["name"])

    def conflict(self) -> str | None:
        """Why this child must not be written (its live object is not ours), else None."""
        if self.live is None or is_ours(self.live, self.stamped):
            return None
        return conflict_message(self.live, self.stamped)


def _read(
    kube: Kube, manifest: dict[str, Any], cache: ChildCache | None, assume_absent: bool
) -> _Child:
    stamped = drift.with_hash(manifest)
    resource = resources.of(stamped)
    meta = stamped["metadata"]
    namespace, name = meta.get("namespace"), meta["name"]
    if assume_absent:
        seen = cache.get(resource, namespace, name) if cache is not None else None
        return _Child(stamped, resource, seen)
    return _Child(stamped, resource, read(kube, resource, namespace, name, cache))


def apply_all(
    kube: Kube, desired: Sequence[dict[str, Any]], cache: ChildCache | None = None,
    *, assume_absent: bool = False,
) -> ApplyResult:
    """Server-side apply each desired child whose live object lacks a desired field.

    Only objects this PaymentService controls are written (updates force our fields back);
    new children are created without force, and only if the name is still free.  An object
    of a child's name that someone else controls (or nobody) is left untouched and reported
    in ``conflicts``; while there is any such conflict the workload is not written either:
    its pods would run with a ServiceAccount, settings or network rules that are not ours.
    Children are read from ``cache`` when it holds them (a stale copy fails the write's
    resourceVersion precondition, and the child is read again with a GET). With
    ``assume_absent`` (the first pass of a new PaymentService) a child the cache does not
    hold is taken as absent without a GET: its create is conditional on no object having
    the name, so one that does fails with 409 and is read and judged like any other.
    """
    result = ApplyResult()
    children = [_read(kube, manifest, cache, assume_absent) for manifest in desired]
    foreign = {child.key: message for child in children if (message := child.conflict())}
    result.conflicts.extend(foreign.values())
    for child in children:
        if child.key in foreign:
            continue
        if result.conflicts and child.key[0] in WORKLOAD_KINDS:
            result.conflicts.append(f"{_ref(child.stamped)} is not applied while another"
                                    " child is not owned by this PaymentService")
            continue
        live = _converge(kube, child, result, cache)
        if live is not None:
            result.live[child.key] = live
    return result


#: ``metadata.resourceVersion`` sent with a create: a precondition no existing object meets
#: (etcd's first write is revision 2), so a name taken since we looked fails with 409 instead
#: of our fields being merged into someone else's object.  A create ignores it.
CREATE_ONLY_VERSION = "1"


def _at_version(stamped: dict[str, Any], version: str) -> dict[str, Any]:
    """The manifest with a resourceVersion precondition (not part of the drift hash)."""
    return {**stamped, "metadata": {**stamped["metadata"], "resourceVersion": version}}


def _converge(
    kube: Kube, child: _Child, result: ApplyResult, cache: ChildCache | None, retries: int = 1
) -> Obj | None:
    """Create or update one child that is ours or absent; the live object afterwards.

    Every write is conditional on the object read (absent, or this resourceVersion).  If it
    changed meanwhile (409), read it again and decide again: it may not be ours any more.
    """
    if not drift.needs_apply(child.live, child.stamped):
        return child.live
    try:
        if child.live is None:
            fresh = _create(kube, child, result)
        else:
            fresh = _update(kube, child.live, child, result)
        if cache is not None:
            cache.wrote(fresh)
        return fresh
    except KubeError as err:
        if err.status != 409 or retries <= 0:
            raise
    meta = child.stamped["metadata"]
    # The pass decided on what it read before: a status change in the newer version (a pod
    # turned ready) is news to it, so this read must not mark that version as seen.
    child.live = fresh_read(kube, child.resource, meta.get("namespace"), meta["name"], cache,
                            seen=False)
    message = child.conflict()
    if message is not None:
        result.conflicts.append(message)
        return None
    return _converge(kube, child, result, cache, retries - 1)


def _create(kube: Kube, child: _Child, result: ApplyResult) -> Obj:
    """Create a child: without force, and only if no object has its name."""
    fresh = kube.apply(_at_version(child.stamped, CREATE_ONLY_VERSION), child.resource,
                       force=False)
    result.created.append(_ref(child.stamped))
    return fresh


def _update(kube: Kube, live: Obj, child: _Child, result: ApplyResult) -> Obj:
    """Update a child known to be ours: force our fields back, if it is still as read."""
    meta = child.stamped["metadata"]
    key = f"{meta.get('namespace')}/{_ref(child.stamped)}"
    digest = str(meta["annotations"][drift.HASH_ANNOTATION])
    BUDGET.check(key, time.monotonic(), digest)
    fresh = _apply_or_repair(kube, child.resource, live, child.stamped)
    # Counted once written: an update refused on a stale version (409) is not a fight.
    BUDGET.record(key, time.monotonic(), digest)
    result.updated.append(_ref(child.stamped))
    if drift.only_replicas(live, child.stamped):
        result.rescaled.append(_ref(child.stamped))
    return fresh


def _apply_or_repair(
    kube: Kube, resource: resources.Resource, live: Obj, stamped: dict[str, Any]
) -> Obj:
    """Apply with force at ``live``'s version; if the result is rejected because another
    manager's list items stay beside ours, reset those lists to the desired ones (on the
    same version) and apply again (errors propagate)."""
    version = str(live["metadata"]["resourceVersion"])
    try:
        return kube.apply(_at_version(stamped, version), resource, force=True)
    except KubeError as err:
        if err.status != 422:
            raise
        ops = drift.list_repairs(live, stamped)
        if not ops:
            raise
    meta = stamped["metadata"]
    guard = {"op": "test", "path": "/metadata/resourceVersion", "value": version}
    patched = kube.json_patch(resource, meta.get("namespace"), meta["name"], [guard, *ops])
    repaired = str(patched["metadata"]["resourceVersion"])
    return kube.apply(_at_version(stamped, repaired), resource, force=True)


class FightingError(Exception):
    """A child was rewritten too often: something else keeps changing it back."""


@dataclass
class UpdateBudget:
    """At most ``limit`` writes of the same desired state of one child per ``window``
    seconds, then stop and report.

    A mutating webhook or another controller that rewrites a field we set would otherwise
    make every reconcile write the same manifest again, and every write trigger another
    reconcile. A write of a manifest that changed (``digest``, its hash: a rollout's replica
    move, a spec edit) is a new intention, not a fight, and spends nothing of the old one's
    budget: a canary of 40 replicas at maxSurge 1 moves each Deployment 40 times in a minute.
    """

    limit: int = 10
    window: float = 300.0
    _history: dict[str, deque[tuple[float, str]]] = field(default_factory=dict)

    def check(self, key: str, now: float, digest: str = "") -> None:
        """Raise :class:`FightingError` if ``key`` has no write of ``digest`` left in the
        window."""
        recent = self._history.setdefault(key, deque())
        while recent and now - recent[0][0] > self.window:
            recent.popleft()
        same = sum(1 for _, seen in recent if seen == digest)
        if same >= self.limit:
            raise FightingError(
                f"{key} was written {same} times in {self.window:.0f}s with the same manifest"
                " and drifted again: another controller or webhook keeps changing fields this"
                " operator sets"
            )

    def record(self, key: str, now: float, digest: str = "") -> None:
        """Count one write of ``key`` at ``digest`` (one that was written)."""
        self._history.setdefault(key, deque()).append((now, digest))

    def spend(self, key: str, now: float, digest: str = "") -> None:
        self.check(key, now, digest)
        self.record(key, now, digest)


BUDGET = UpdateBudget()


def prune(
    kube: Kube,
    namespace: str,
    owner_uid: str,
    selector: str,
    kinds: Iterable[resources.Resource],
    wanted: set[tuple[str, str]],
    result: ApplyResult,
) -> None:
    """Delete children of ``owner_uid`` (found by label) that are not in ``wanted``."""
    for resource in kinds:
        for obj in kube.list_objects(resource, namespace, selector):
            meta = obj["metadata"]
            owners = meta.get("ownerReferences", [])
            if not any(o.get("uid") == owner_uid and o.get("controller") for o in owners):
                continue
            if (resource.kind, meta["name"]) in wanted:
                continue
            kube.delete(resource, namespace, meta["name"], meta["uid"])
            result.pruned.append(f"{resource.kind}/{meta['name']}")


def prune_label_owned(
    kube: Kube,
    namespaces: Iterable[str | None],
    owner_uid_: str,
    kinds: Iterable[resources.Resource],
    wanted: set[tuple[str, str, str]],
    result: ApplyResult,
) -> None:
    """Delete label-owned children of ``owner_uid_`` (found by the owner-uid label in each
    namespace, None: all of them) that are not in ``wanted`` (namespace, kind, name).

    Objects with an owner reference are left to :func:`prune` (and garbage collection).
    """
    selector = f"{child_meta.LABEL_OWNER_UID}={owner_uid_}"
    for resource in kinds:
        for namespace in namespaces:
            for obj in kube.list_objects(resource, namespace, selector):
                meta = obj["metadata"]
                if meta.get("ownerReferences") or owner_uid(obj) != owner_uid_:
                    continue
                if (meta["namespace"], resource.kind, meta["name"]) in wanted:
                    continue
                kube.delete(resource, meta["namespace"], meta["name"], meta["uid"])
                result.pruned.append(f"{resource.kind}/{meta['namespace']}/{meta['name']}")
