"""Pure drift detection: does a live object already hold everything we would apply?

Server-side apply is idempotent but every PATCH is still a write request.  To keep an idle
resync at zero writes, the reconciler applies a child only when :func:`needs_apply` says the
live object lacks one of the desired fields, or when the desired manifest itself changed
(tracked by a hash annotation, so fields we stop setting are released by a fresh apply).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from kubernetes.utils import parse_quantity

from payment_operator.builders.meta import LABEL_REVISION

HASH_ANNOTATION = "paydeck.dev/applied-hash"


def _hashed(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    """What the hash covers: the manifest, but a revision's Deployment without its pod
    template. The revision label names that template (it is the template's own hash, and a
    changed template is another revision, another Deployment); an older revision's
    Deployment is built from the template it holds, with the server's defaults in it, which
    would otherwise hash apart from the same template built from the spec and make the first
    pass of every rollout rewrite the stable Deployment for its annotation alone."""
    labels = (manifest.get("metadata") or {}).get("labels") or {}
    spec = manifest.get("spec")
    if (manifest.get("kind") != "Deployment" or LABEL_REVISION not in labels
            or not isinstance(spec, Mapping)):
        return manifest
    return {**manifest, "spec": {k: v for k, v in spec.items() if k != "template"}}


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """A short stable hash of a manifest (without the hash annotation itself)."""
    payload = json.dumps(_hashed(manifest), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def with_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    """A copy of the manifest stamped with its own hash annotation."""
    digest = manifest_hash(manifest)
    meta = dict(manifest.get("metadata", {}))
    meta["annotations"] = {**meta.get("annotations", {}), HASH_ANNOTATION: digest}
    return {**manifest, "metadata": meta}


_QUANTITY_MAPS = frozenset({"requests", "limits"})


def _same_quantity(live: Any, desired: Any) -> bool:
    try:
        return bool(parse_quantity(live) == parse_quantity(desired))
    except (ValueError, TypeError):
        return False


def contains(live: Any, desired: Any, *, quantities: bool = False) -> bool:
    """True when every field of ``desired`` is present in ``live`` with an equal value.

    Maps compare key by key (extra live keys, such as server defaults, are fine); lists of
    named items match by name (extra live items are fine), other lists item by item with the
    same length; numbers compare numerically;
    resource quantities compare by value (the server turns ``0.5`` into ``500m``).
    """
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            key in live
            and contains(live[key], value, quantities=quantities or key in _QUANTITY_MAPS)
            for key, value in desired.items()
        )
    if quantities and live != desired:
        return _same_quantity(live, desired)
    if isinstance(desired, list):
        if not isinstance(live, list):
            return False
        if _named(desired) and all(isinstance(item, Mapping) for item in live):
            # Containers, env, ports, volumes: match by name; items another manager added
            # (a sidecar injected by a webhook) are not ours and are not drift.
            by_name = {item.get("name"): item for item in live}
            return all(
                want["name"] in by_name and contains(by_name[want["name"]], want)
                for want in desired
            )
        return len(live) == len(desired) and all(
            contains(a, b) for a, b in zip(live, desired, strict=True)
        )
    if isinstance(desired, bool) or isinstance(live, bool):
        return live is desired
    if isinstance(desired, int | float) and isinstance(live, int | float):
        return float(live) == float(desired)
    return bool(live == desired)


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, Mapping) and "name" in i for i in items)


def needs_apply(live: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether applying ``desired`` (already stamped by :func:`with_hash`) would change ``live``."""
    if live is None:
        return True
    if live.get("metadata", {}).get("deletionTimestamp"):
        return True
    desired_body = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}
    return not contains(live, desired_body)


def only_replicas(live: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether ``desired`` (stamped) changes nothing of ``live`` but ``spec.replicas`` (and
    the hash annotation that follows it): a rescale, such as a canary's replica move."""
    if live is None or "replicas" not in desired.get("spec", {}):
        return False
    live_spec = live.get("spec") or {}
    if live_spec.get("replicas") == desired["spec"]["replicas"]:
        return False
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    meta = dict(desired.get("metadata", {}))
    meta["annotations"] = {**meta.get("annotations", {}),
                           HASH_ANNOTATION: annotations.get(HASH_ANNOTATION)}
    same_size = {**desired, "metadata": meta,
                 "spec": {**desired["spec"], "replicas": live_spec.get("replicas")}}
    return not needs_apply(live, same_size)


def _pointer(parts: list[str]) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def list_repairs(live: Any, desired: Any, path: list[str] | None = None) -> list[dict[str, Any]]:
    """JSON-patch operations that reset every drifted list of ``live`` to the desired one.

    Server-side apply cannot remove a list item another manager owns (a port renumbered by
    ``kubectl patch`` stays beside ours and the Service becomes invalid), so when an apply
    is rejected, the reconciler replaces such lists wholesale and applies again.
    """
    path = path or []
    ops: list[dict[str, Any]] = []
    if not (isinstance(live, Mapping) and isinstance(desired, Mapping)):
        return ops
    for key, want in desired.items():
        if key not in live:
            continue
        here = [*path, str(key)]
        have = live[key]
        if isinstance(want, list) and isinstance(have, list):
            if not contains(have, want):
                ops.append({"op": "replace", "path": _pointer(here), "value": want})
        elif isinstance(want, Mapping):
            ops.extend(list_repairs(have, want, here))
    return ops
