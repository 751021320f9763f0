"""Per-object coalescing of reconcile triggers: at most one pass per object at a time.

Many triggers (create, update, the drift timer, a burst of child events) can ask for the same
object at once.  While a pass runs, further triggers only mark the object *pending* and
return; the running pass goes round once more for them, so a burst costs one extra pass, not
one blocked thread each.  The work itself is a function passed in, so this module knows
nothing about Kubernetes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

R = TypeVar("R")


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: bool = False
    prune: bool = False


class Coalescer(Generic[R]):
    """Runs ``work`` for a key, coalescing with a pass already running for the same key.

    ``trace`` (for tests) is called with a point name from the calling thread: ``"acquire"``
    just before it tries to take the key's lock, ``"idle"`` when it found nothing pending
    and is about to leave.
    """

    def __init__(self, trace: Callable[[str], None] | None = None) -> None:
        self._slots: dict[Hashable, _Slot] = {}
        self._guard = threading.Lock()
        self._trace = trace or (lambda point: None)

    def run(
        self, key: Hashable, work: Callable[[bool], R], *, prune: bool, wait: bool
    ) -> list[R]:
        """Ask for a pass of ``work(prune)`` for ``key``; return the results of passes run here.

        ``prune`` is sticky: the next pass that starts prunes.  With ``wait=False`` a caller
        that finds a pass running only marks the key pending and returns ``[]``; the running
        pass goes round again.  With ``wait=True`` the caller waits for the lock and then
        always runs a pass of its own (with its own ``prune``), even if another thread has
        meanwhile done its work: its first result is from a pass that started after its
        trigger, so a failure it reports is real.  Either way the caller goes round again for
        triggers that arrived during its pass; the last result is the newest.
        """
        slot = self._slot(key)
        with self._guard:
            slot.pending = True
            slot.prune = slot.prune or prune
        results: list[R] = []
        own = wait  # a blocking caller's first pass runs whatever the pending flag says
        while self._acquire(slot, wait):
            try:
                with self._guard:
                    run_now, slot.pending = slot.pending or own, False
                    flag = slot.prune or (own and prune)
                    if run_now:
                        slot.prune = False
                if run_now:
                    results.append(work(flag))
            finally:
                slot.lock.release()
            own = wait = False  # go round again only for triggers that came during this pass
            # A trigger that came before the release found the lock taken and left its work
            # to the holder: look again now that the lock is free (whoever takes it runs it).
            with self._guard:
                again = slot.pending
            if not again:
                self._trace("idle")
                break
        return results

    def forget(self, key: Hashable) -> None:
        """Drop the bookkeeping of a deleted object (unless a pass still runs for it)."""
        with self._guard:
            slot = self._slots.get(key)
            if slot is not None and not slot.lock.locked():
                del self._slots[key]

    def _slot(self, key: Hashable) -> _Slot:
        with self._guard:
            return self._slots.setdefault(key, _Slot())

    def _acquire(self, slot: _Slot, wait: bool) -> bool:
        self._trace("acquire")
        return slot.lock.acquire(blocking=wait)
