"""Per-object coalescing of reconcile triggers: at most one pass per object at a time.

Many triggers (create, update, the drift timer, a burst of child events) can ask for the same
object at once.  While a pass runs, further triggers only mark the object *pending* and
return; the running pass goes round once more for them, so a burst costs one extra pass, not
one blocked thread each.  The work itself is a function passed in, so this module knows
nothing about Kubernetes.

The promise: every trigger is followed by a pass that *starts* after it.  A trigger marks
the object pending before it tries the lock; a holder looks at the pending mark again after
every release of the lock, so a trigger that found the lock taken is always picked up by the
holder (or by whoever takes the lock next), even if its pass raised.
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
    users: int = 0  # callers inside run() for this key; the slot is dropped at zero


class Coalescer(Generic[R]):
    """Runs ``work`` for a key, coalescing with a pass already running for the same key.

    Bookkeeping lives only while some caller is inside :meth:`run` for the key, so deleted
    objects leave nothing behind.  ``trace`` (for tests) is called with a point name from the
    calling thread: ``"acquire"`` just before it tries to take the key's lock, ``"idle"`` when
    it found nothing pending and is about to leave.
    """

    def __init__(self, trace: Callable[[str], None] | None = None) -> None:
        self._slots: dict[Hashable, _Slot] = {}
        self._guard = threading.Lock()
        self._trace = trace or (lambda point: None)

    def __len__(self) -> int:
        """Keys with a caller inside :meth:`run` right now."""
        with self._guard:
            return len(self._slots)

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

        If a pass raises, the caller still goes round for triggers that arrived during it,
        and raises that error only if its last pass failed.
        """
        slot = self._enter(key, prune)
        try:
            return self._loop(slot, work, prune, wait)
        finally:
            self._leave(key, slot)

    def _loop(self, slot: _Slot, work: Callable[[bool], R], prune: bool, wait: bool) -> list[R]:
        results: list[R] = []
        error: Exception | None = None
        own = wait  # a blocking caller's first pass runs whatever the pending mark says
        while self._acquire(slot, wait):
            try:
                with self._guard:
                    run_now, slot.pending = slot.pending or own, False
                    flag = slot.prune or (own and prune)
                    if run_now:
                        slot.prune = False
                if run_now:
                    try:
                        results.append(work(flag))
                        error = None
                    except Exception as exc:  # kept until we know no newer pass follows
                        error = exc
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
        if error is not None:
            raise error
        return results

    def _enter(self, key: Hashable, prune: bool) -> _Slot:
        with self._guard:
            slot = self._slots.setdefault(key, _Slot())
            slot.users += 1
            slot.pending = True
            slot.prune = slot.prune or prune
            return slot

    def _leave(self, key: Hashable, slot: _Slot) -> None:
        with self._guard:
            slot.users -= 1
            if slot.users == 0:  # nothing can be pending: a pending trigger has a user inside
                del self._slots[key]

    def _acquire(self, slot: _Slot, wait: bool) -> bool:
        self._trace("acquire")
        return slot.lock.acquire(blocking=wait)
