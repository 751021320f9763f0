"""Kopf's diff base, kept as a digest instead of a second copy of the spec.

Kopf remembers the last handled "essence" of an object (its spec, labels and annotations) to
tell a create from an update from a resume.  Its stock storages keep the whole essence as a
JSON string in the object, so every PaymentService carried its spec twice in etcd.  The
reconcile is level-based: it reads the object afresh and never looks at Kopf's ``old``,
``new`` or ``diff``, so only *whether* the essence changed matters.  This storage keeps a
SHA-256 of the canonical essence (about 80 bytes), compares digests with digests, and reads a
full essence left by an older version as its digest, so an upgrade is not seen as a change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, cast

import kopf

#: The only key of a stored (and of a built) essence.
DIGEST = "sha256"


def digest(essence: Mapping[str, Any]) -> str:
    """The SHA-256 of an essence, independent of key order and whitespace."""
    canonical = json.dumps(essence, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def as_digest(essence: Mapping[str, Any]) -> dict[str, str]:
    """``essence`` as a digest essence (one already in that form is returned as it is)."""
    if set(essence) == {DIGEST} and isinstance(essence[DIGEST], str):
        return {DIGEST: essence[DIGEST]}
    return {DIGEST: digest(essence)}


class DigestDiffBaseStorage(kopf.StatusDiffBaseStorage):
    """A :class:`kopf.StatusDiffBaseStorage` that stores and compares digests only."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None,
    ) -> kopf.BodyEssence:
        extra = list(extra_fields or [])
        # Kopf deep-copies the body it is given, status and managedFields included, on every
        # event, to drop them at once: give it only what the essence keeps (the same essence).
        source = body if extra else _essential(body)
        essence = super().build(body=cast(kopf.Body, source), extra_fields=extra)
        return cast(kopf.BodyEssence, as_digest(cast(Mapping[str, Any], essence)))

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        stored = super().fetch(body=body)
        if stored is None:
            return None
        return cast(kopf.BodyEssence, as_digest(cast(Mapping[str, Any], stored)))


def _essential(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body without what an essence never holds: status and every metadata field but
    labels and annotations (a shallow copy; Kopf's ``build`` copies the rest)."""
    meta = body.get("metadata") or {}
    kept = {k: meta[k] for k in ("labels", "annotations") if k in meta}
    return {**{k: v for k, v in body.items() if k not in ("status", "metadata")},
            "metadata": kept}
