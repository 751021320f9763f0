"""Risk checks of the request path: velocity limits before Stripe, per-client rate limits.

The glue between the pure rules (:mod:`payment_runtime.domain.velocity`,
:mod:`payment_runtime.domain.ratelimit`), the Redis adapter and the API's errors:

- a payment over a velocity limit is ``402 velocity_limit_exceeded`` (its scope and window
  in ``details``); the service stores it as the idempotency key's answer, so a retry with
  the same key replays it without counting again;
- a mutating request over the client's quota is ``429 rate_limited`` (the ``RateLimit-*``
  and ``Retry-After`` headers come from :class:`~payment_runtime.domain.ratelimit.Usage`);
- Redis down or slow: ``failure_mode`` ``open`` logs a warning (once per outage), counts
  ``risk_check_failures_total`` and lets the request through; ``closed`` refuses it with
  ``503 risk_checks_unavailable`` (the service releases the idempotency key, so a retry
  after Redis is back goes through).
"""

from __future__ import annotations

import logging
from typing import Literal

from payment_runtime.adapters.risk import RiskStore, RiskStoreUnavailable
from payment_runtime.domain import ratelimit, velocity
from payment_runtime.errors import ApiError
from payment_runtime.metrics import Metrics
from payment_runtime.settings import Settings

log = logging.getLogger(__name__)
FailureMode = Literal["open", "closed"]
UNAVAILABLE_CODE = "risk_checks_unavailable"


class RiskChecks:
    """Velocity limits and a rate limit on one store, under one failure mode."""

    def __init__(
        self,
        store: RiskStore,
        metrics: Metrics,
        *,
        limits: tuple[velocity.VelocityLimit, ...],
        quota: ratelimit.Quota | None,
        failure_mode: FailureMode,
        prefix: str,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.limits = limits
        self.quota = quota
        self.failure_mode = failure_mode
        self.prefix = prefix
        self._failing = False

    def _unavailable(self, check: str, exc: RiskStoreUnavailable) -> None:
        """Count the failure; raise 503 when closed, else warn (once per outage)."""
        self.metrics.risk_check_failures.labels(check, self.failure_mode).inc()
        if not self._failing:
            log.warning(
                "risk checks cannot reach Redis",
                extra={"check": check, "error": str(exc), "failure_mode": self.failure_mode},
            )
        self._failing = True
        if self.failure_mode == "closed":
            raise ApiError(
                503, UNAVAILABLE_CODE, "risk checks are unavailable; retry later"
            ) from exc

    def _recovered(self) -> None:
        if self._failing:
            log.info("risk checks reach Redis again")
        self._failing = False

    async def screen_payment(self, attempt: velocity.Attempt) -> None:
        """Admit the attempt (recording it in every window) or raise the refusal."""
        if not self.limits:
            return
        check = velocity.check(self.prefix, self.limits, attempt)
        try:
            answer = await self.store.velocity(check)
        except RiskStoreUnavailable as exc:
            self._unavailable("velocity", exc)
            return
        self._recovered()
        decision = velocity.decision(self.limits, answer)
        if decision.admitted or decision.limit is None:
            return
        self.metrics.velocity_refusals.labels(decision.limit.scope).inc()
        raise ApiError(
            402,
            velocity.REFUSAL_CODE,
            f"too many payment attempts for this {decision.limit.scope.replace('_', ' ')}",
            velocity.refusal_details(decision.limit, decision.retry_after_seconds),
        )

    async def count_request(self, subject: str) -> ratelimit.Usage | None:
        """This request's usage of the client's quota (None: no rate limit, or fail-open)."""
        if self.quota is None:
            return None
        key = ratelimit.key(self.prefix, subject)
        try:
            answer = await self.store.count_request(key, self.quota.window_seconds)
        except RiskStoreUnavailable as exc:
            self._unavailable("rate_limit", exc)
            return None
        self._recovered()
        return ratelimit.usage(self.quota, answer)

    async def ready(self) -> bool:
        """Readiness: only a fail-closed service depends on Redis."""
        return self.failure_mode == "open" or await self.store.ping()


def enforce(usage: ratelimit.Usage | None) -> None:
    """Raise ``429 rate_limited`` when the request is over its quota."""
    if usage is not None and not usage.allowed:
        raise ApiError(
            429,
            ratelimit.REFUSAL_CODE,
            "too many requests for this client",
            {"retry_after_seconds": usage.reset_seconds},
        )


def from_settings(settings: Settings, metrics: Metrics, redis_url: str | None) -> RiskChecks | None:
    """The risk checks the settings turn on, or None (no check on: no Redis)."""
    if not settings.risk_checks_enabled:
        return None
    if redis_url is None:
        raise ValueError("risk checks are on but no Redis URL was given")
    store = RiskStore(
        redis_url, timeout=settings.redis_timeout_seconds, max_connections=settings.redis_pool_max
    )
    quota = (
        None
        if settings.rate_limit_requests is None
        else ratelimit.Quota(settings.rate_limit_requests, settings.rate_limit_window_seconds)
    )
    return RiskChecks(
        store,
        metrics,
        limits=tuple(settings.velocity_limits),
        quota=quota,
        failure_mode=settings.risk_failure_mode,
        prefix=settings.redis_key_prefix,
    )
