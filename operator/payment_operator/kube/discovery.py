"""Which optional APIs (Prometheus Operator, External Secrets, CSI, Strimzi) the cluster serves."""

from __future__ import annotations

import threading
import time

from payment_operator.builders import Capabilities
from payment_operator.kube.client import Kube
from payment_operator.kube.resources import OPTIONAL_APIS


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
                self._value = Capabilities(
                    **{flag: kube.has_api(api) for flag, api in OPTIONAL_APIS.items()}
                )
                self._at = time.monotonic()
            return self._value
