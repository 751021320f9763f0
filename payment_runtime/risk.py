"""Risk checks of the request path: velocity limits before Stripe, per-client rate limits.

The glue between the pure rules (:mod:`payment_runtime.domain.velocity`,
:mod:`payment_runtime.domain.ratelimit`), the Redis adapter and the API's errors:

- a payment over a velocity limit is ``402 velocity_limit_exceeded`` (its scope and window
  in ``details``); the service stores it as the idempotency key's answer, so a retry with
  the same key replays it without counting again;
- a mutating request over the client's quota is ``429 rate_limited`` (the ``RateLimit-*``
  and ``Retry-After`` headers come from :class:`~payment_runtime.domain.ratelimit.Usage`);
- with both on, a payment's count and its velocity check are one Redis round trip
  (:class:`PaymentGate`): counted after the idempotency key is claimed, and a payment over
  its quota is refused without being screened (the service releases the key, as for a
  503); a create that is never screened (a bad body, a replay) is counted on its own;
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
        self._refuse(velocity.decision(self.limits, answer))

    def _refuse(self, decision: velocity.Decision) -> None:
        """Raise the 402 of a refused attempt (nothing when admitted)."""
        if decision.admitted or decision.limit is None:
            return
        self.metrics.velocity_refusals.labels(decision.limit.scope).inc()
        raise ApiError(
            402,
            velocity.REFUSAL_CODE,
            f"too many payment attempts for this {decision.limit.scope.replace('_', ' ')}",
            velocity.refusal_details(decision.limit, decision.retry_after_seconds),
        )

    @property
    def gates_payments(self) -> bool:
        """Whether a payment's count and velocity check share one call (both are on)."""
        return self.quota is not None and bool(self.limits)

    def payment_gate(self, subject: str) -> PaymentGate:
        """The gate of one create request by ``subject`` (see :attr:`gates_payments`)."""
        return PaymentGate(self, subject)

    async def screen_and_count(
        self, subject: str, attempt: velocity.Attempt
    ) -> ratelimit.Usage | None:
        """Count the request in the client's quota and, within it, screen the attempt: one
        round trip. Returns the usage (None when Redis failed open); raises the refusal."""
        assert self.quota is not None
        check = velocity.check(self.prefix, self.limits, attempt)
        rate_key = ratelimit.key(self.prefix, subject)
        try:
            answer = await self.store.screen(rate_key, self.quota, check)
        except RiskStoreUnavailable as exc:
            self.metrics.risk_check_failures.labels("rate_limit", self.failure_mode).inc()
            self._unavailable("velocity", exc)
            return None
        self._recovered()
        usage = ratelimit.usage(self.quota, answer[:2])
        if usage.allowed:
            self._refuse(velocity.decision(self.limits, answer[2:]))
        return usage

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


class PaymentGate:
    """The risk checks of one create request when the rate limit and velocity limits are
    both on: whichever comes first, the screen (:meth:`screen`, one round trip with the
    count) or the end of a request that was never screened (:meth:`count`), counts the
    request, once."""

    def __init__(self, checks: RiskChecks, subject: str) -> None:
        self.checks = checks
        self.subject = subject
        self.counted = False
        self.usage: ratelimit.Usage | None = None

    async def screen(self, attempt: velocity.Attempt) -> None:
        """Count and screen; raise ``429`` over the quota, the velocity refusal, or 503."""
        self.counted = True
        self.usage = await self.checks.screen_and_count(self.subject, attempt)
        enforce(self.usage)

    async def count(self) -> ratelimit.Usage | None:
        """Count a request the screen never saw (no-op when it did); the usage."""
        if not self.counted:
            self.counted = True
            self.usage = await self.checks.count_request(self.subject)
        return self.usage


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
