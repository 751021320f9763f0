"""Bring children to their desired state: apply what drifted, prune what is no longer wanted."""

from __future__ import annotations

import time
from collections import deque
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
            if live is not None:
                BUDGET.spend(f"{meta.get('namespace')}/{_ref(stamped)}", time.monotonic())
            fresh = _apply_or_repair(kube, resource, live, stamped)
            (result.created if live is None else result.updated).append(_ref(stamped))
            live = fresh
        if live is not None:
            result.live[(stamped["kind"], meta["name"])] = live
    return result


def _apply_or_repair(
    kube: Kube, resource: resources.Resource, live: Obj | None, stamped: dict[str, Any]
) -> Obj:
    """Apply; if the result is rejected because another manager's list items stay beside
    ours, reset those lists to the desired ones and apply again (errors propagate)."""
    try:
        return kube.apply(stamped, resource)
    except KubeError as err:
        if live is None or err.status != 422:
            raise
        ops = drift.list_repairs(live, stamped)
        if not ops:
            raise
    meta = stamped["metadata"]
    kube.json_patch(resource, meta.get("namespace"), meta["name"], ops)
    return kube.apply(stamped, resource)


class FightingError(Exception):
    """A child was rewritten too often: something else keeps changing it back."""


@dataclass
class UpdateBudget:
    """At most ``limit`` updates of one child per ``window`` seconds, then stop and report.

    A mutating webhook or another controller that rewrites a field we set would otherwise
    make every reconcile write again, and every write trigger another reconcile.
    """

    limit: int = 10
    window: float = 300.0
    _history: dict[str, deque[float]] = field(default_factory=dict)

    def spend(self, key: str, now: float) -> None:
        recent = self._history.setdefault(key, deque())
        while recent and now - recent[0] > self.window:
            recent.popleft()
        if len(recent) >= self.limit:
            raise FightingError(
                f"{key} was updated {len(recent)} times in {self.window:.0f}s and drifted again:"
                " another controller or webhook keeps changing fields this operator sets"
            )
        recent.append(now)


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
