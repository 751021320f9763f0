"""The one status writer: skips no-op writes, guards with resourceVersion, retries conflicts.

Callers pass a function from the current object to the desired status (see
``payment_operator.conditions.desired_status``); on a 409 the object is read again and the
function re-applied, so a write never rests on a stale read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from payment_operator.conditions import differs
from payment_operator.kube.client import Kube, KubeError, Obj
from payment_operator.kube.resources import PAYMENT_SERVICE

MAX_ATTEMPTS = 5


def write(
    kube: Kube, obj: Obj, compute: Callable[[Obj], dict[str, Any]]
) -> tuple[bool, Obj]:
    """Write ``compute(obj)`` into obj's status if it differs; return (written, latest object)."""
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    for _ in range(MAX_ATTEMPTS):
        desired = compute(obj)
        if not differs(desired, obj.get("status") or {}):
            return False, obj
        patch = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                 "status": desired}
        try:
            return True, kube.patch_status(PAYMENT_SERVICE, namespace, name, patch)
        except KubeError as err:
            if err.status != 409:
                raise
            fresh = kube.get(PAYMENT_SERVICE, namespace, name)
            if fresh is None:
                return False, obj
            obj = fresh
    raise KubeError(409, "Conflict", f"status of {namespace}/{name} kept changing under us")
