"""The API client as reconcile passes see it: children read from the cache, writes recorded.

:class:`CachedKube` wraps a :class:`~payment_operator.kube.client.Kube`.  For a child resource
the :class:`~payment_operator.kube.cache.ChildCache` holds (fully listed), ``get`` and
``list_objects`` answer from memory; every write's response (apply, JSON patch) and every
delete is recorded in the cache, so the next pass starts from what was written.  Everything
else — the PaymentService itself, Events, pods, the platform policy, discovery, a kind not
listed yet — goes to the API server, as does :meth:`CachedKube.fresh_get`, the read a write
that met a conflict (409) decides again from.

Why a stale cache never writes to an object we do not own: a miss makes the pass *create*,
and a create carries a resourceVersion no existing object has (``apply.CREATE_ONLY_VERSION``),
so a name taken by someone else fails with 409; an update carries the resourceVersion it was
decided on, so an object changed since (a new owner, say) fails with 409 too.  Either way the
pass reads the object fresh and decides again from the live owner references.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from payment_operator.builders import meta as child_meta
from payment_operator.kube.cache import ChildCache
from payment_operator.kube.client import Kube, Obj
from payment_operator.kube.resources import Resource


def _managed(obj: Mapping[str, Any] | None) -> bool:
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(child_meta.LABEL_MANAGED_BY) == child_meta.MANAGED_BY


class CachedKube(Kube):
    """:class:`Kube` with child reads from ``cache`` and every child write recorded in it."""

    def __init__(self, inner: Kube, cache: ChildCache) -> None:
        # No super().__init__: every verb goes through ``inner`` (which may be a test double).
        self.inner = inner
        self.cache = cache
        self.field_manager = inner.field_manager
        self.timeout = getattr(inner, "timeout", 30.0)

    def request(self, method: str, path: str, **kwargs: Any) -> Obj:
        return self.inner.request(method, path, **kwargs)

    # ---- reads ------------------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str | None, name: str) -> Obj | None:
        if self.cache.caches(resource):
            return self.cache.get(resource, namespace, name)
        return self.inner.get(resource, namespace, name)

    def fresh_get(self, resource: Resource, namespace: str | None, name: str) -> Obj | None:
        live = self.inner.fresh_get(resource, namespace, name)
        # Only a managed child can be in the cache: a foreign object of that name never is
        # (no watch event would ever replace it).
        if live is not None and _managed(live) and self.cache.caches(resource):
            self.cache.wrote(live)
        return live

    def list_objects(
        self, resource: Resource, namespace: str | None, selector: str = ""
    ) -> list[Obj]:
        if self.cache.caches(resource):
            return self.cache.list(resource, namespace, selector)
        return self.inner.list_objects(resource, namespace, selector)

    # ---- writes -----------------------------------------------------------------------------

    def apply(self, manifest: Mapping[str, Any], resource: Resource, *, force: bool) -> Obj:
        fresh = self.inner.apply(manifest, resource, force=force)
        self._record(resource, fresh)
        return fresh

    def json_patch(
        self, resource: Resource, namespace: str | None, name: str, ops: list[Obj]
    ) -> Obj:
        fresh = self.inner.json_patch(resource, namespace, name, ops)
        self._record(resource, fresh)
        return fresh

    def delete(self, resource: Resource, namespace: str | None, name: str, uid: str) -> None:
        self.inner.delete(resource, namespace, name, uid)
        if self.cache.caches(resource):
            self.cache.deleted(resource, namespace, name, uid)

    def create(self, resource: Resource, manifest: Mapping[str, Any]) -> Obj:
        return self.inner.create(resource, manifest)

    def patch_status(self, resource: Resource, namespace: str, name: str, patch: Obj) -> Obj:
        return self.inner.patch_status(resource, namespace, name, patch)

    def has_api(self, api_version: str) -> bool:
        return self.inner.has_api(api_version)

    def _record(self, resource: Resource, fresh: Obj) -> None:
        if self.cache.caches(resource) and _managed(fresh):
            self.cache.wrote(fresh)
