"""Bring children to their desired state: apply what drifted, prune what is no longer wanted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from payment_operator.kube import drift, resources
from payment_operator.kube.client import Kube, KubeError, Obj


@dataclass
class ApplyResult:
    """What one pass changed, and the live children afterwards (by kind and name)."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    live: dict[tuple[str, str], Obj] = field(default_factory=dict)

    @property
    def writes(self) -> int:
        return len(self.created) + len(self.updated) + len(self.pruned)


def _ref(manifest: Any) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


def apply_all(kube: Kube, desired: Sequence[dict[str, Any]]) -> ApplyResult:
    """Server-side apply each desired child whose live object lacks a desired field."""
    result = ApplyResult()
    for manifest in desired:
        stamped = drift.with_hash(manifest)
        resource = resources.of(stamped)
        meta = stamped["metadata"]
        live = kube.get(resource, meta.get("namespace"), meta["name"])
        if drift.needs_apply(live, stamped):
            fresh = _apply_or_repair(kube, resource, live, stamped)
            (result.created if live is None else result.updated).append(_ref(stamped))
            live = fresh
        assert live is not None
        result.live[(stamped["kind"], meta["name"])] = live
    return result


def _apply_or_repair(
    kube: Kube, resource: resources.Resource, live: Obj | None, stamped: dict[str, Any]
) -> Obj:
    """Apply; if another manager's list items block the desired state, reset those lists."""
    try:
        fresh = kube.apply(stamped, resource)
    except KubeError as err:
        if live is None or err.status != 422:
            raise
        fresh = live
    if live is None or not drift.needs_apply(fresh, stamped):
        return fresh
    ops = drift.list_repairs(fresh, stamped)
    if not ops:
        return fresh
    meta = stamped["metadata"]
    kube.json_patch(resource, meta.get("namespace"), meta["name"], ops)
    return kube.apply(stamped, resource)


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
