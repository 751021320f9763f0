"""An in-memory stand-in for :class:`~payment_operator.kube.client.Kube`, for unit tests.

It keeps objects by (kind, namespace, name) and behaves like the API server where the
operator relies on it: server-side apply replaces the fields we set (and bumps generation
when the spec changes), status patches are merge patches guarded by ``resourceVersion``
(a stale one is a 409), deletes honour the uid precondition, lists filter by label selector.
Every call is recorded in :attr:`FakeKube.calls`; tests inject failures and concurrent
writers through :attr:`FakeKube.status_errors` and :attr:`FakeKube.before_status_patch`.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from payment_operator.kube.client import FIELD_MANAGER, Kube, KubeError, Obj
from payment_operator.kube.resources import Resource

WRITES = ("apply", "create", "patch_status", "json_patch", "delete")


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7386): None deletes, mappings merge, the rest replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def _selects(selector: str, labels: Mapping[str, str]) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class FakeKube(Kube):
    """The verbs of :class:`Kube` over a dict; never touches the network."""

    def __init__(self) -> None:  # no ApiClient: every verb is overridden
        self.field_manager = FIELD_MANAGER
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.calls: list[tuple[str, str, str]] = []
        #: Errors the next ``patch_status`` calls raise, one per call, in order.
        self.status_errors: list[KubeError] = []
        #: Called before each ``patch_status`` is looked at (a concurrent writer, say).
        self.before_status_patch: Callable[[FakeKube], None] | None = None
        #: Errors ``apply`` raises for a kind ("Deployment": KubeError(403, ...)).
        self.apply_errors: dict[str, KubeError] = {}
        self.apis: set[str] = set()
        self._versions = itertools.count(1)

    # ---- test helpers -------------------------------------------------------------------

    def add(self, obj: Mapping[str, Any]) -> Obj:
        """Store an object as the API server would create it (uid, resourceVersion...)."""
        stored = copy.deepcopy(dict(obj))
        meta = stored.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(next(self._versions))
        self.objects[(stored["kind"], meta.get("namespace", ""), meta["name"])] = stored
        return copy.deepcopy(stored)

    def stored(self, kind: str, namespace: str, name: str) -> Obj | None:
        obj = self.objects.get((kind, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def touch(self, kind: str, namespace: str, name: str, **spec: Any) -> None:
        """Someone else changed an object's spec: new generation and resourceVersion."""
        obj = self.objects[(kind, namespace, name)]
        obj.setdefault("spec", {}).update(spec)
        obj["metadata"]["generation"] = int(obj["metadata"].get("generation", 1)) + 1
        obj["metadata"]["resourceVersion"] = str(next(self._versions))

    def writes(self) -> list[tuple[str, str, str]]:
        return [call for call in self.calls if call[0] in WRITES]

    def kinds(self) -> set[str]:
        return {kind for kind, _, _ in self.objects}

    # ---- verbs --------------------------------------------------------------------------

    def request(self, method: str, path: str, **_: Any) -> Obj:
        raise AssertionError(f"unexpected raw request {method} {path}")

    def get(self, resource: Resource, namespace: str | None, name: str) -> Obj | None:
        self.calls.append(("get", resource.kind, name))
        return self.stored(resource.kind, namespace or "", name)

    def list_objects(
        self, resource: Resource, namespace: str | None, selector: str = ""
    ) -> list[Obj]:
        self.calls.append(("list", resource.kind, selector))
        return [
            copy.deepcopy(obj) for (kind, ns, _), obj in sorted(self.objects.items())
            if kind == resource.kind and (namespace is None or ns == namespace)
            and _selects(selector, obj["metadata"].get("labels") or {})
        ]

    def apply(self, manifest: Mapping[str, Any], resource: Resource, *, force: bool = False) -> Obj:
        meta = manifest["metadata"]
        self.calls.append(("apply", resource.kind, meta["name"]))
        if resource.kind in self.apply_errors:
            raise self.apply_errors[resource.kind]
        key = (resource.kind, meta.get("namespace", ""), meta["name"])
        live = self.objects.get(key)
        if live is None:
            return self.add(manifest)
        wanted = meta.get("resourceVersion")
        if wanted is not None and wanted != live["metadata"].get("resourceVersion"):
            # As the API server: a resourceVersion in the manifest is a precondition.
            raise KubeError(409, "Conflict", f"{resource.kind} {meta['name']} was modified")
        fresh = copy.deepcopy(dict(manifest))
        for field in ("uid", "generation", "creationTimestamp"):
            if field in live["metadata"]:
                fresh["metadata"][field] = live["metadata"][field]
        if fresh.get("spec") != live.get("spec"):
            fresh["metadata"]["generation"] = int(live["metadata"].get("generation", 1)) + 1
        if "status" in live:
            fresh["status"] = live["status"]
        fresh["metadata"]["resourceVersion"] = str(next(self._versions))
        self.objects[key] = fresh
        return copy.deepcopy(fresh)

    def create(self, resource: Resource, manifest: Mapping[str, Any]) -> Obj:
        meta = manifest["metadata"]
        self.calls.append(("create", resource.kind, meta["name"]))
        if resource.kind in self.apply_errors:
            raise self.apply_errors[resource.kind]
        if (resource.kind, meta.get("namespace", ""), meta["name"]) in self.objects:
            raise KubeError(409, "AlreadyExists", f"{resource.kind} {meta['name']} exists")
        return self.add({"kind": resource.kind, **manifest})

    def patch_status(self, resource: Resource, namespace: str, name: str, patch: Obj) -> Obj:
        self.calls.append(("patch_status", resource.kind, name))
        if self.before_status_patch is not None:
            self.before_status_patch(self)
        if self.status_errors:
            raise self.status_errors.pop(0)
        obj = self.objects.get((resource.kind, namespace, name))
        if obj is None:
            raise KubeError(404, "NotFound", f"{resource.kind} {name} not found")
        expected = (patch.get("metadata") or {}).get("resourceVersion")
        if expected is not None and expected != obj["metadata"]["resourceVersion"]:
            raise KubeError(409, "Conflict", "the object has been modified")
        _merge(obj.setdefault("status", {}), patch.get("status") or {})
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        return copy.deepcopy(obj)

    def json_patch(
        self, resource: Resource, namespace: str | None, name: str, ops: list[Obj]
    ) -> Obj:
        raise AssertionError("json_patch is not emulated")

    def delete(self, resource: Resource, namespace: str | None, name: str, uid: str) -> None:
        self.calls.append(("delete", resource.kind, name))
        key = (resource.kind, namespace or "", name)
        obj = self.objects.get(key)
        if obj is not None and obj["metadata"]["uid"] == uid:
            del self.objects[key]

    def has_api(self, api_version: str) -> bool:
        self.calls.append(("discover", api_version, ""))
        return api_version in self.apis
