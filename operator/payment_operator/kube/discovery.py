"""Which optional APIs (Prometheus Operator, External Secrets, CSI, Strimzi) the cluster serves,
and at which version (Strimzi's KafkaTopic: ``v1``, else ``v1beta2``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from payment_operator.builders import Capabilities
from payment_operator.kube.client import Kube
from payment_operator.kube.resources import OPTIONAL_APIS


def capabilities(serves: Callable[[str], bool]) -> Capabilities:
    """The capabilities from ``serves(group/version)``: per optional API, the first of its
    versions (most preferred first) the cluster serves; versions after it are not asked."""
    found = {flag: next((api for api in apis if serves(api)), None)
             for flag, apis in OPTIONAL_APIS.items()}
    strimzi = found.get("strimzi")
    flags: dict[str, Any] = {flag: api is not None for flag, api in found.items()}
    if strimzi:
        flags["strimzi_version"] = strimzi.rpartition("/")[2]
    return Capabilities(**flags)


class CapabilityCache:
    """Discovery answers, refreshed at most once per ``ttl`` seconds."""

    def __init__(self, ttl: float = 300.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._value: Capabilities | None = None
        self._at = 0.0

    def get(self, kube: Kube) -> Capabilities:
        with self._lock:
            if self._value is None or time.monotonic() - self._at > self.ttl:
                self._value = capabilities(kube.has_api)
                self._at = time.monotonic()
            return self._value
