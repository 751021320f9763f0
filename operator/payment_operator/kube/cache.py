"""The children as the watches last saw them, so a reconcile pass need not GET each one.

Filled only by the watch events of the managed children (``handlers.on_child_event``, before
it triggers the owner's pass), never by our own writes: whatever it holds, a watch stream
delivered and will update or delete.  A read it cannot answer (a child never seen, a name
someone else's object took without our labels, a kind not watched) is a miss, and the
caller GETs.  Ownership is judged from the body as before, and every write stays
conditional on the resourceVersion read, so a stale entry costs a 409 and a fresh read,
never a write to an object that is not ours.  The drift timer's passes read around it:
a deletion missed while a watch was down is seen within one resync.

Bodies are kept as compact JSON without ``managedFields`` (nothing reads them), a copy per
read: a pass may change what it was given.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from payment_operator.kube.client import Obj
from payment_operator.kube.resources import Resource

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


def _version(body: Mapping[str, Any]) -> int | None:
    try:
        return int(body["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return None


class ChildCache:
    """The last body the watches delivered for each child (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: dict[Key, tuple[int | None, bytes]] = {}

    @staticmethod
    def _key(api_version: str, kind: str, namespace: str | None, name: str) -> Key:
        return (api_version, kind, namespace or "", name)

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Take one watch event (``None``: an object of the initial listing)."""
        meta = body.get("metadata") or {}
        key = self._key(str(body.get("apiVersion")), str(body.get("kind")),
                        meta.get("namespace"), str(meta.get("name")))
        if event_type == "DELETED":
            with self._lock:
                self._bodies.pop(key, None)
            return
        version = _version(body)
        slim = {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        data = json.dumps(slim, separators=(",", ":")).encode()
        with self._lock:
            held = self._bodies.get(key)
            # Keep the newer of two versions (an event may be delivered late, after a relist).
            if held is not None and held[0] is not None and version is not None \
                    and held[0] > version:
                return
            self._bodies[key] = (version, data)

    def get(self, resource: Resource, namespace: str | None, name: str) -> Obj | None:
        """A copy of the child's last body, or None when the watches have not seen it."""
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
