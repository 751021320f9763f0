"""Which drift-timer passes read every child from the API server, and which read the cache.

The watches keep the children's cache current (:mod:`payment_operator.kube.cache`): what
they deliver triggers a pass at once. What they can miss is a change made while a watch was
down for longer than the API server keeps history (a watch restarted after ``410 Gone``
lists again and sees what exists, but no deletion of what is gone). The drift timer covers
that: most of its passes read the cache, like any pass, and one every ``fresh_seconds`` per
object reads every child afresh. At 1,000 objects and the default timings that is ≈ 10
GETs a second instead of ≈ 100 (six children an object, every 60 s), for a missed change
seen within ``fresh_seconds`` plus one timer interval.

It also remembers when each object's last pass of any trigger ended: a cached timer pass
finds nothing that pass did not, so while a service is progressing (its own events and
requeues drive passes) a timer pass within an interval of the last one is skipped
(``handlers.resync``). A settled service's timer passes all run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable


class FreshReads:
    """When each object's drift timer last read its children afresh, and when its last pass
    ended (thread-safe)."""

    def __init__(self, fresh_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.fresh_seconds = fresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[Hashable, float] = {}
        self._passed: dict[Hashable, float] = {}

    def due(self, key: Hashable) -> bool:
        """Whether this timer pass of ``key`` reads afresh. An object's first timer pass in
        this process reads the cache the watches just filled (their initial listing is a
        fresh read) and starts its clock."""
        now = self._clock()
        with self._lock:
            last = self._last.setdefault(key, now)
        return now - last >= self.fresh_seconds

    def done(self, key: Hashable) -> None:
        """A fresh pass of ``key`` completed: the next one is ``fresh_seconds`` away."""
        with self._lock:
            self._last[key] = self._clock()

    def passed(self, key: Hashable) -> None:
        """A pass of ``key`` (any trigger) ended now."""
        with self._lock:
            self._passed[key] = self._clock()

    def passed_within(self, key: Hashable, seconds: float) -> bool:
        """Whether a pass of ``key`` ended less than ``seconds`` ago."""
        with self._lock:
            last = self._passed.get(key)
        return last is not None and self._clock() - last < seconds

    def forget(self, key: Hashable) -> None:
        """The object is gone."""
        with self._lock:
            self._last.pop(key, None)
            self._passed.pop(key, None)
