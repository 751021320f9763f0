"""Posting the rollout's Events at once, before the status records the step they announce.

The engine's Events (``StepCompleted``, ``RolloutAborted``, ``Promoted``...) announce a
transition the next status write records.  Kopf posts Events in the background after the
handler returns, so an operator killed between the status write and that post would lose the
Event for good.  These are therefore posted synchronously *before* the status write, under a
name derived from the object's uid, the status the decision started from and the Event's
place in the pass: an operator killed after the post but before the write decides the same
transition again from the same status, and its second post is refused as AlreadyExists
instead of announcing the step twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from payment_operator.kube.client import Kube, KubeError, Obj
from payment_operator.kube.resources import EVENT
from payment_operator.rollout.state import Event

log = logging.getLogger(__name__)

COMPONENT = "paydeck-operator"
#: The API server caps an Event's message; longer ones are cut, not refused.
MAX_MESSAGE = 1024


def event_name(obj: Mapping[str, Any], index: int, reason: str) -> str:
    """A name the same decision, taken again from the same stored status, gets again."""
    meta = obj["metadata"]
    basis = json.dumps(
        [meta.get("uid"), obj.get("status") or {}, index, reason], sort_keys=True, default=str,
    )
    return f"{meta['name']}.{hashlib.sha256(basis.encode()).hexdigest()[:16]}"


def manifest(obj: Mapping[str, Any], event: Event, name: str, now: datetime) -> Obj:
    """The core/v1 Event ``name`` about ``obj``."""
    meta = obj["metadata"]
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"],
            "namespace": meta["namespace"], "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:MAX_MESSAGE],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def post(kube: Kube, obj: Mapping[str, Any], pass_events: Sequence[Event], now: datetime) -> None:
    """Post the Events of one decision about ``obj``; a replay's duplicates are dropped.

    A failure to post is logged, never raised: an Event is for humans, and the status write
    that follows is what the rollout depends on.
    """
    for index, event in enumerate(pass_events):
        name = event_name(obj, index, event.reason)
        try:
            kube.create(EVENT, manifest(obj, event, name, now))
        except KubeError as err:
            if err.status == 409:
                log.info("event %s (%s) already posted by an earlier attempt", name, event.reason)
            else:
                log.warning("could not post event %s (%s): %s", name, event.reason, err)
