"""The rate table file (``PAYMENT_FX_RATES_FILE``): read at startup, re-read when it changes.

The operator mounts the user's ConfigMap key read-only; the kubelet replaces the file (an
atomic symlink swap) when the ConfigMap changes. :func:`watch` looks at the file's identity
(inode, mtime, size) every ``fx_rates_reload_seconds`` in a background task, never on the
request path, and swaps the table in only if the new version is valid: a broken update keeps
the last good table and logs the entry it refused. At startup a bad table is fatal.
"""

from __future__ import annotations

import asyncio
import logging
import os

from payment_runtime.domain.fx import RateTable, RateTableError, parse_table

log = logging.getLogger(__name__)


class RatesFile:
    """The current :class:`RateTable` of one file; :attr:`table` is what callers read."""

    def __init__(self, path: str, reporting: str) -> None:
        self.path = path
        self.reporting = reporting
        try:
            self._stamp = self._identity()  # before the read: a later swap is seen
        except OSError as exc:
            raise RateTableError(f"{path}: cannot be read: {exc.strerror}") from None
        self.table: RateTable = self._read()

    def _identity(self) -> tuple[int, int, int]:
        st = os.stat(self.path)  # follows the kubelet's ..data symlink
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _read(self) -> RateTable:
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise RateTableError(f"{self.path}: cannot be read: {exc.strerror}") from None
        try:
            return parse_table(text, self.reporting)
        except RateTableError as exc:
            raise RateTableError(f"{self.path}: {exc}") from None

    def refresh(self) -> bool:
        """Re-read the file if it changed; True when a new valid table was taken."""
        try:
            stamp = self._identity()
        except OSError:
            return False
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            self.table = self._read()
        except RateTableError as exc:
            log.warning(
                "rate table update refused, the last good one stays", extra={"why": str(exc)}
            )
            return False
        log.info("rate table reloaded", extra={"path": self.path, "rates": len(self.table.rates)})
        return True


def load(path: str | None, reporting: str | None) -> RatesFile | None:
    """The rate file of the settings, or None without a reporting currency."""
    if path is None or reporting is None:
        return None
    return RatesFile(path, reporting)


async def watch(rates: RatesFile, interval: float) -> None:
    """Call :meth:`RatesFile.refresh` every ``interval`` seconds (in a thread) until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(rates.refresh)
        except Exception:
            log.warning("could not check the rate table", exc_info=True)
