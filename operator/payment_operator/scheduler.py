"""Requeue at a time: run an action for an object after a delay, even if nothing changes.

A reconcile pass may need to run again at a known moment (the end of a timed pause, the next
analysis measurement) although no watch event will come.  :class:`Scheduler` keeps at most
one pending wake-up per object: the earliest wins, a later request is dropped (the pass it
triggers asks again for the next moment), and deleting the object cancels it.

Each wake-up is a :class:`threading.Timer` (a sleeping daemon thread), so one slow action
never delays another object's.  Like :meth:`asyncio.loop.call_later`, the action runs in a
copy of the context :meth:`Scheduler.schedule` was called in: a wake-up scheduled from a
Kopf handler can still post Kubernetes Events through ``kopf.event``.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

log = logging.getLogger("paydeck.scheduler")


@dataclass
class _Wakeup:
    due: float
    action: Callable[[], None]
    context: contextvars.Context
    timer: threading.Timer | None = field(default=None, repr=False)


class Scheduler:
    """At most one pending wake-up per key; the earliest wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wakeups: dict[Hashable, _Wakeup] = {}
        self._closed = False

    def schedule(self, key: Hashable, delay: float, action: Callable[[], None]) -> bool:
        """Run ``action`` in ``delay`` seconds, unless ``key`` already has an earlier wake-up.

        Returns whether this wake-up is now the pending one (False: an earlier one is kept,
        or the scheduler is closed).
        """
        delay = max(0.0, delay)
        wakeup = _Wakeup(time.monotonic() + delay, action, contextvars.copy_context())
        with self._lock:
            current = self._wakeups.get(key)
            if self._closed or (current is not None and current.due <= wakeup.due):
                return False
            if current is not None and current.timer is not None:
                current.timer.cancel()
            wakeup.timer = threading.Timer(delay, self._fire, args=(key, wakeup))
            wakeup.timer.name = f"requeue {key}"
            wakeup.timer.daemon = True
            self._wakeups[key] = wakeup
            wakeup.timer.start()
        return True

    def cancel(self, key: Hashable) -> None:
        """Drop ``key``'s pending wake-up, if any (its object was deleted)."""
        with self._lock:
            wakeup = self._wakeups.pop(key, None)
        if wakeup is not None and wakeup.timer is not None:
            wakeup.timer.cancel()

    def due_in(self, key: Hashable) -> float | None:
        """Seconds until ``key``'s pending wake-up (None when there is none)."""
        with self._lock:
            wakeup = self._wakeups.get(key)
        return None if wakeup is None else max(0.0, wakeup.due - time.monotonic())

    def close(self) -> None:
        """Cancel every pending wake-up and accept no new ones (the operator stops)."""
        with self._lock:
            self._closed = True
            wakeups, self._wakeups = list(self._wakeups.values()), {}
        for wakeup in wakeups:
            if wakeup.timer is not None:
                wakeup.timer.cancel()

    def _fire(self, key: Hashable, wakeup: _Wakeup) -> None:
        with self._lock:
            if self._wakeups.get(key) is not wakeup:
                return  # cancelled or replaced by an earlier one just before it fired
            del self._wakeups[key]
        try:
            wakeup.context.run(wakeup.action)
        except Exception:
            log.exception("requeue of %s failed", key)
