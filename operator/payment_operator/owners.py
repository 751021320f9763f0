"""Owners waiting for a pass after a child event: each once, oldest first, run by a few tasks.

A child's watch event only updates the children's cache and marks its owner here, then
returns, so Kopf's worker for that child (and the event bodies it queues) goes away at once
instead of waiting for a pass; a burst of events for one owner's children is one entry.
:data:`OwnerQueue.runners` tasks take the owners in the order they were marked and run each
one's pass in a thread (the passes block on the API), with the context the first mark was
made in (Kopf's, so a pass can post Events).  Whether a pass for the same owner is already
running is the coalescer's business (:mod:`payment_operator.coalesce`), not this queue's.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Hashable
from concurrent.futures import Executor

log = logging.getLogger("paydeck.owners")


class OwnerQueue:
    """Pending owners by key, each with the work its pass is; started by the first mark."""

    def __init__(self, runners: int, executor: Executor | None = None) -> None:
        self.runners = runners
        #: Where the passes run (Kopf's thread pool, set at start-up); None: the loop's.
        self.executor = executor
        self._pending: dict[Hashable, Callable[[], None]] = {}
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def __len__(self) -> int:
        return len(self._pending)

    def mark(self, key: Hashable, work: Callable[[], None]) -> None:
        """Ask for ``work`` (the owner's pass) to run soon; an owner already waiting keeps
        its place. Called from the event loop."""
        self._pending.setdefault(key, work)
        if not self._tasks:
            self._wake = asyncio.Event()
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._run(), name=f"paydeck-owners-{i}")
                           for i in range(self.runners)]
        assert self._wake is not None
        self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            key = next(iter(self._pending))
            work = self._pending.pop(key)
            try:
                await loop.run_in_executor(self.executor, contextvars.copy_context().run, work)
            except Exception:  # one owner's failure never stops the others' passes
                log.exception("the pass of %s after a child event failed", key)

    def close(self) -> None:
        """Stop the runners (a pass already in its thread finishes there)."""
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        self._pending.clear()
