"""The children cache: the operator's children as its watches last saw them, plus its writes.

The *base* is one index per child kind, fed by the operator's watch streams and filtered by the
managed-by label (Kopf's ``@kopf.index``: it adds, replaces and drops objects on every watch
event, and lists every kind fully before any handler runs).  An index maps the keys of
:func:`index_entries` to the (slimmed) objects stored under them.  On top of the base this store
keeps *marks*: what the operator's own writes returned (:meth:`ChildCache.wrote`) and what it
deleted (:meth:`ChildCache.deleted`), each until the watch shows the same or a newer state, so
the next pass neither re-writes an object it has just written nor re-creates one it pruned
before the watch event arrived.

Which of the two is newer is decided by ``metadata.resourceVersion`` compared as integers (the
etcd revision every API server hands out; Kubernetes 1.35 made comparing them part of the API,
KEP-5504 "Comparable Resource Version"); where a version is not such an integer, the watch
wins, as in an informer without writes of its own.

Everything here is pure and thread-safe: Kopf updates the base on its event loop, reconcile
passes read from the thread pool.  The I/O (the API fallbacks) is :mod:`~.cached`.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from payment_operator.builders import meta as child_meta
from payment_operator.kube.resources import Resource

Obj = dict[str, Any]
#: (kind, namespace, name); cluster-scoped objects have the namespace "".
Key = tuple[str, str, str]
#: What a child kind's index holds: keys of :func:`index_entries` -> the objects under them,
#: each as compact JSON (:func:`pack`).
Base = Mapping[Hashable, Iterable[str]]

#: Metadata no reconcile reads, dropped before an object is stored (managedFields is most of
#: the size of a small object).
DROPPED_META = ("managedFields",)
DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def slim(obj: Mapping[str, Any]) -> Obj:
    """``obj`` without the metadata no pass reads (:data:`DROPPED_META`); shares the rest."""
    out = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, Mapping):
        meta = {k: v for k, v in meta.items() if k not in DROPPED_META}
        annotations = meta.get("annotations")
        if isinstance(annotations, Mapping):
            meta["annotations"] = {k: v for k, v in annotations.items()
                                   if k not in DROPPED_ANNOTATIONS}
        out["metadata"] = meta
    return out


def pack(obj: Mapping[str, Any]) -> str:
    """An object as it is stored: slimmed, as compact JSON.  A string costs a fraction of
    the memory of the same object as nested dicts, and ``json.loads`` hands out a fresh copy
    faster than ``copy.deepcopy`` would."""
    return json.dumps(slim(obj), separators=(",", ":"))


def unpack(stored: str) -> Obj:
    found: Obj = json.loads(stored)
    return found


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta["name"]))


def _name_key(namespace: str | None, name: str) -> tuple[str, str, str]:
    return ("name", namespace or "", name)


def _instance_key(namespace: str | None, instance: str) -> tuple[str, str, str]:
    return ("instance", namespace or "", instance)


def _owner_key(uid: str) -> tuple[str, str]:
    return ("owner-uid", uid)


def index_entries(
    obj: Mapping[str, Any], api_version: str, kind: str
) -> dict[Hashable, str]:
    """The keys one child is indexed under, each to the same packed copy: its name, and the
    labels passes select by (the service's instance label, the owner-uid label).  Listed
    objects come without ``kind``: the watched resource's is filled in."""
    stored = pack({"apiVersion": api_version, "kind": kind, **obj})
    meta = obj["metadata"]
    labels = meta.get("labels") or {}
    entries: dict[Hashable, str] = {_name_key(meta.get("namespace"), meta["name"]): stored}
    if instance := labels.get(child_meta.LABEL_INSTANCE):
        entries[_instance_key(meta.get("namespace"), str(instance))] = stored
    if uid := labels.get(child_meta.LABEL_OWNER_UID):
        entries[_owner_key(str(uid))] = stored
    return entries


def parse_selector(selector: str) -> dict[str, str]:
    """``a=b,c=d`` -> {a: b, c: d}; only equality terms (the only ones the operator uses)."""
    out: dict[str, str] = {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, sep, value = term.partition("=")
        if not sep or key.endswith("!"):
            raise ValueError(f"unsupported label selector term {term!r}")
        out[key.strip()] = value.lstrip("=").strip()
    return out


def selects(labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())


def _version(obj: Mapping[str, Any]) -> int | None:
    """The resourceVersion as an integer, if it is a comparable one (KEP-5504: a positive
    decimal integer without leading zeros), else None."""
    text = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    if not text.isdigit() or not text.isascii() or text.startswith("0"):
        return None
    return int(text)


def _uid(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


@dataclass(frozen=True)
class Written:
    """An object as a write of ours returned it."""

    obj: Obj


@dataclass(frozen=True)
class Deleted:
    """An object (this uid) we deleted; hidden until the watch drops it."""

    uid: str


Mark = Written | Deleted


def resolve(watched: Obj | None, mark: Mark | None) -> tuple[Obj | None, bool]:
    """The newer of the watch's object and our mark for the same key, and whether to keep the
    mark (False once the watch has caught up with it)."""
    if mark is None:
        return watched, False
    if isinstance(mark, Deleted):
        if watched is None:
            return None, False  # the watch saw the deletion (or never had it)
        if _uid(watched) == mark.uid:
            return None, True  # not yet gone from the watch
        return watched, False  # a new object of that name
    if watched is None:
        return mark.obj, True  # the watch has not shown our create yet
    ours, theirs = _version(mark.obj), _version(watched)
    if ours is None or theirs is None or theirs >= ours:
        return watched, False
    return mark.obj, True


class ChildCache:
    """The children of every PaymentService: the watched base and our marks on top of it.

    A resource is *cached* once :meth:`attach` gave it a base and :meth:`trust` named it
    (its initial list is complete); others are none of this store's business (callers ask
    the API server).  Reading Kopf's indices from another thread is safe in CPython: a
    lookup or a ``list()`` of a dict view runs without releasing the GIL.  Every object
    handed out is a copy: callers may change it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bases: dict[str, Base] = {}
        self._trusted: frozenset[str] = frozenset()
        self._marks: dict[Key, Mark] = {}

    # ---- what is cached ---------------------------------------------------------------------

    def attach(self, bases: Mapping[Resource, Base]) -> None:
        """The base of each child resource (its index); replaces earlier ones."""
        with self._lock:
            self._bases = {_rid(r): base for r, base in bases.items()}

    def trust(self, resources: Iterable[Resource]) -> None:
        """These resources are fully listed: a miss in their base means "absent"."""
        with self._lock:
            self._trusted = frozenset(_rid(r) for r in resources if _rid(r) in self._bases)

    @property
    def trusted(self) -> bool:
        """Whether :meth:`trust` has named any resource yet."""
        with self._lock:
            return bool(self._trusted)

    def caches(self, resource: Resource) -> bool:
        with self._lock:
            return _rid(resource) in self._trusted

    def __len__(self) -> int:
        """Marks held (for tests and the metrics)."""
        with self._lock:
            return len(self._marks)

    # ---- reads ------------------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str | None, name: str) -> Obj | None:
        """The object as last seen or written (None: absent, or not a managed child)."""
        key = (resource.kind, namespace or "", name)
        with self._lock:
            base = self._bases.get(_rid(resource))
            watched = _one(base.get(_name_key(namespace, name), ()) if base else ())
            found, keep = resolve(watched, self._marks.get(key))
            if not keep:
                self._marks.pop(key, None)
        if found is None or found is watched:
            return found  # unpacked for this call: already a copy
        return copy.deepcopy(found)

    def list(self, resource: Resource, namespace: str | None, selector: str = "") -> list[Obj]:
        """Objects of ``resource`` in ``namespace`` (None: every namespace) whose labels match
        the equality ``selector``, sorted by namespace and name."""
        wanted = parse_selector(selector)
        kind = resource.kind
        with self._lock:
            base = self._bases.get(_rid(resource)) or {}
            watched = {key_of(o): o for o in _candidates(base, namespace, wanted)}
            unpacked = {id(o) for o in watched.values()}  # fresh copies, unlike our marks
            marked = [k for k in self._marks if k[0] == kind
                      and (namespace is None or k[1] == namespace)]
            for key in set(watched) | set(marked):
                found, keep = resolve(watched.get(key), self._marks.get(key))
                if not keep:
                    self._marks.pop(key, None)
                if found is None:
                    watched.pop(key, None)
                else:
                    watched[key] = found
            out = [o for k, o in sorted(watched.items())
                   if (namespace is None or k[1] == namespace)
                   and selects((o.get("metadata") or {}).get("labels") or {}, wanted)]
        return [o if id(o) in unpacked else copy.deepcopy(o) for o in out]

    # ---- writes and watch events -----------------------------------------------------------

    def wrote(self, obj: Mapping[str, Any]) -> None:
        """A write of ours returned ``obj``: the next read sees at least this."""
        if not (obj.get("metadata") or {}).get("name"):
            return
        with self._lock:
            self._marks[key_of(obj)] = Written(copy.deepcopy(slim(obj)))

    def deleted(self, resource: Resource, namespace: str | None, name: str, uid: str) -> None:
        """We deleted the object ``uid``: reads say absent until the watch shows otherwise."""
        with self._lock:
            self._marks[(resource.kind, namespace or "", name)] = Deleted(uid)

    def seen(self, obj: Mapping[str, Any]) -> None:
        """The watch delivered ``obj``: drop a mark it has caught up with."""
        key = key_of(obj)
        with self._lock:
            if key in self._marks:
                _, keep = resolve(dict(obj), self._marks[key])
                if not keep:
                    del self._marks[key]

    def gone(self, obj: Mapping[str, Any]) -> None:
        """The watch delivered the deletion of ``obj``: drop any mark about that object."""
        key = key_of(obj)
        with self._lock:
            mark = self._marks.get(key)
            if mark is None:
                return
            uid = mark.uid if isinstance(mark, Deleted) else _uid(mark.obj)
            if uid == _uid(obj):
                del self._marks[key]


def _rid(resource: Resource) -> str:
    """A resource's identity: its kind at one group/version (marks are by kind alone: the
    same object is served at every version)."""
    return f"{resource.api_version}/{resource.kind}"


def _one(stored: Iterable[str]) -> Obj | None:
    """The object under a name key (the newest if a replaced one lingers)."""
    found = [unpack(s) for s in list(stored)]
    if not found:
        return None
    return max(found, key=lambda o: _version(o) or 0)


def _candidates(base: Base, namespace: str | None, wanted: Mapping[str, str]) -> Iterable[Obj]:
    """The base's objects a selection can match, from the narrowest key the selector gives."""
    if namespace is not None and (instance := wanted.get(child_meta.LABEL_INSTANCE)):
        return [unpack(s) for s in list(base.get(_instance_key(namespace, instance), ()))]
    if uid := wanted.get(child_meta.LABEL_OWNER_UID):
        return [unpack(s) for s in list(base.get(_owner_key(uid), ()))]
    return [unpack(s) for key in list(base) if isinstance(key, tuple) and key[0] == "name"
            for s in list(base.get(key, ()))]
