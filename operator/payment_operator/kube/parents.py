"""The PaymentServices as last seen, so a reconcile pass need not GET the object it serves.

Filled by every watch event of a PaymentService (``handlers.on_parent_event``, which Kopf
runs before the create/update/resume handlers of the same event) and by the answers of the
operator's own status writes; the newer of two resourceVersions is kept, and a DELETED event
leaves a tombstone at the deletion's version, so a pass's late copy of a deleted service
(read or written before the deletion) is not taken back in. A pass reads its object from
here and GETs it only when it is not held (a service no event has brought yet), or when the
drift timer reads everything afresh.

A cached copy is never older than the last event the watch delivered or the last status this
process wrote, so a pass on it decides as a pass that had started a moment earlier would: a
spec or status changed meanwhile arrives as its own event and triggers its own pass, and the
status write is conditional on the resourceVersion read (a 409 reads the object again), so
nothing is written on top of a change the pass did not see.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from payment_operator.kube.cache import resource_version
from payment_operator.kube.client import Obj

Key = tuple[str, str]  # namespace, name


def _key(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name"))


class ParentCache:
    """The newest body seen of each PaymentService (thread-safe; copies out)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Per service: its version and compact JSON body, or None (a tombstone: deleted).
        self._bodies: dict[Key, tuple[int | None, bytes | None]] = {}

    def offer(self, body: Mapping[str, Any]) -> None:
        """Keep ``body`` unless a newer version of the object is held."""
        version = resource_version(body)
        meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
        data = json.dumps({**body, "metadata": meta}, separators=(",", ":")).encode()
        key = _key(body)
        with self._lock:
            held = self._bodies.get(key)
            if held is not None and version is not None and held[0] is not None and (
                    version < held[0] or (held[1] is None and version <= held[0])):
                return  # older than what is held, or not newer than its deletion
            self._bodies[key] = (version, data)

    def deleted(self, body: Mapping[str, Any]) -> None:
        """The service is gone (its DELETED event's body): no copy up to that version is
        held or taken any more."""
        with self._lock:
            self._bodies[_key(body)] = (resource_version(body), None)

    def get(self, namespace: str, name: str) -> Obj | None:
        """A copy of the newest body seen, or None."""
        with self._lock:
            held = self._bodies.get((namespace, name))
        if held is None or held[1] is None:
            return None
        body: Obj = json.loads(held[1])
        return body

    def __len__(self) -> int:
        """Services held (tombstones not counted)."""
        with self._lock:
            return sum(1 for _, data in self._bodies.values() if data is not None)
