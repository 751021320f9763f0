"""The children as the watches last saw them, so a reconcile pass need not GET each one.

Filled by the watch events of the managed children (``handlers.on_child_event``, before it
triggers the owner's pass) and by the GETs of passes (:func:`read`): only objects labelled as
ours, which a watch stream delivers and will update or delete; a GET that finds one gone
or relabelled drops its entry.  Our own writes only record their version
(:meth:`ChildCache.wrote`).  A read it cannot answer (a child never seen, a name someone
else's object took without our labels, a kind not watched) is a miss, and the caller GETs.
Ownership is judged from the body as before, and every write stays
conditional on the resourceVersion read, so a stale entry costs a 409 and a fresh read,
never a write to an object that is not ours.  The drift timer's passes read around it:
a deletion missed while a watch was down is seen within one resync.

Bodies are kept as compact JSON without ``managedFields`` (nothing reads them), a copy per
read: a pass may change what it was given.

:meth:`ChildCache.observe` also says whether an event changed anything a pass reads: the
child without its status, plus the status fields a pass reads of its kind
(:data:`STATUS_READ`). A PodDisruptionBudget's status or a Job's pod counts change several
times while a service starts and no pass reads them; those events update the cache and
trigger nothing. Nor does the event of a pass's own write (:meth:`ChildCache.wrote`): that
pass saw the object at that version, in the write's answer.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from payment_operator import observability
from payment_operator.builders.meta import LABEL_MANAGED_BY, MANAGED_BY
from payment_operator.kube.client import Kube, Obj
from payment_operator.kube.resources import Resource

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name
#: Writes remembered until their watch event (a child in a namespace no watch sees never
#: sends one: the oldest are forgotten, which only costs a pass).
WRITTEN_MAX = 10_000


def _conditions(status: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    return [(c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
            for c in status.get("conditions") or []]


#: What a reconcile pass reads of each kind's status (``observe.revisions``: a Deployment's
#: pods and ready pods; ``observe.job_state``: a Job's conditions; nothing of a PDB's). A
#: kind not named here has its whole status compared. Reading another status field in a
#: pass means naming it here, or its changes trigger no pass.
STATUS_READ: Mapping[str, Callable[[Mapping[str, Any]], Any]] = {
    # Its conditions too (a ProgressDeadlineExceeded), though no pass reads them yet.
    "Deployment": lambda st: (st.get("replicas"), st.get("readyReplicas"),
                              [c[:3] for c in _conditions(st)]),
    "Job": lambda st: [c for c in _conditions(st) if c[0] in ("Complete", "Failed")],
    "PodDisruptionBudget": lambda st: None,
}


def signature(body: Mapping[str, Any]) -> bytes:
    """What a pass reads of a child: all of it but its status, resourceVersion and
    managedFields, and the status fields of :data:`STATUS_READ`."""
    meta = {k: v for k, v in (body.get("metadata") or {}).items()
            if k not in ("resourceVersion", "managedFields")}
    status = body.get("status") or {}
    read = STATUS_READ.get(str(body.get("kind")))
    rest = {k: v for k, v in body.items() if k not in ("metadata", "status")}
    seen = [meta, rest, read(status) if read is not None else status]
    return hashlib.sha256(json.dumps(seen, sort_keys=True, default=str).encode()).digest()


def managed(body: Mapping[str, Any]) -> bool:
    """Whether the object carries the label the children's watches select."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(LABEL_MANAGED_BY) == MANAGED_BY)


def resource_version(body: Mapping[str, Any]) -> int | None:
    """An object's resourceVersion as a number (None when absent or not one)."""
    try:
        return int(body["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return None


def _older(version: int | None, than: int | None) -> bool:
    return version is not None and than is not None and version < than


class ChildCache:
    """The last body the watches delivered for each child (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: dict[Key, tuple[int | None, bytes, bytes]] = {}
        self._written: dict[Key, int] = {}
        self._answers = True

    def reading_around(self) -> ChildCache:
        """A view of this cache that answers no read (every read is a GET) but learns from
        the GETs and writes: the drift timer's, so what a watch missed is seen there."""
        view = ChildCache.__new__(ChildCache)
        view._lock, view._bodies, view._written = self._lock, self._bodies, self._written
        view._answers = False
        return view

    @staticmethod
    def _key(api_version: str, kind: str, namespace: str | None, name: str) -> Key:
        return (api_version, kind, namespace or "", name)

    def _key_of(self, body: Mapping[str, Any]) -> Key:
        meta = body.get("metadata") or {}
        return self._key(str(body.get("apiVersion")), str(body.get("kind")),
                         meta.get("namespace"), str(meta.get("name")))

    def wrote(self, body: Mapping[str, Any]) -> None:
        """A pass wrote this child and read the answer: the watch event of that version
        brings it nothing new."""
        key, version = self._key_of(body), resource_version(body)
        if version is None:
            return
        with self._lock:
            held = self._bodies.get(key)
            if held is not None and not _older(held[0], version):
                return  # its event came first (and triggered its pass)
            self._written.pop(key, None)
            self._written[key] = version
            while len(self._written) > WRITTEN_MAX:
                del self._written[next(iter(self._written))]

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> bool:
        """Take one watch event (``None``: an object of the initial listing); whether it
        changed what a pass reads (a deletion, a child first seen, :func:`signature`), and is
        not the event of a pass's own write."""
        meta = body.get("metadata") or {}
        key = self._key_of(body)
        if event_type == "DELETED":
            self._drop(key)
            return True
        version = resource_version(body)
        slim = {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        data = json.dumps(slim, separators=(",", ":")).encode()
        digest = signature(slim)
        with self._lock:
            held = self._bodies.get(key)
            # Keep the newer of two versions (an event may be delivered late, after a relist).
            if held is not None and _older(version, held[0]):
                return False
            self._bodies[key] = (version, data, digest)
            if version is not None and self._written.get(key) == version:
                del self._written[key]
                return False  # the pass that wrote it saw this version
        return held is None or held[2] != digest

    def _drop(self, key: Key) -> tuple[int | None, bytes, bytes] | None:
        with self._lock:
            self._written.pop(key, None)
            return self._bodies.pop(key, None)

    def forget(self, body: Mapping[str, Any]) -> Obj | None:
        """Drop the entry of an object that lost our labels (the watches no longer see it);
        the body it had, if any (whose labels name its owner)."""
        held = self._drop(self._key_of(body))
        return None if held is None else dict(json.loads(held[1]))

    def refresh(
        self, resource: Resource, namespace: str | None, name: str, live: Obj | None,
        seen: bool = True,
    ) -> None:
        """What a GET just found: an entry for an object gone or no longer labelled as ours
        is dropped (its watch event may never come); one of ours is kept if newer.

        ``seen=False``: the pass that read it has already decided, so the body is not kept
        (as it would then be what passes have seen, its watch event would trigger none)."""
        if live is not None and managed(live):
            if seen:
                self.observe("MODIFIED", live)
            return
        self._drop(self._key(resource.api_version, resource.kind, namespace, name))

    def get(self, resource: Resource, namespace: str | None, name: str) -> Obj | None:
        """A copy of the child's last body, or None when the watches have not seen it."""
        if not self._answers:
            return None
        with self._lock:
            held = self._bodies.get(self._key(resource.api_version, resource.kind,
                                              namespace, name))
        if held is None:
            return None
        body: Obj = json.loads(held[1])
        return body

    def __len__(self) -> int:
        with self._lock:
            return len(self._bodies)


def read(
    kube: Kube, resource: Resource, namespace: str | None, name: str,
    cache: ChildCache | None,
) -> Obj | None:
    """The live object: from the watches' cache when it holds it, else a GET (whose answer
    refreshes the cache: an entry for an object gone or relabelled is dropped)."""
    if cache is not None and (seen := cache.get(resource, namespace, name)) is not None:
        observability.CHILD_READS.labels("cache").inc()
        return seen
    observability.CHILD_READS.labels("get").inc()
    return fresh_read(kube, resource, namespace, name, cache)


def fresh_read(
    kube: Kube, resource: Resource, namespace: str | None, name: str,
    cache: ChildCache | None, seen: bool = True,
) -> Obj | None:
    """A GET, always; its answer refreshes the cache (see :meth:`ChildCache.refresh` for
    ``seen``)."""
    live = kube.get(resource, namespace, name)
    if cache is not None:
        cache.refresh(resource, namespace, name, live, seen=seen)
    return live
