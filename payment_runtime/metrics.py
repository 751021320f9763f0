"""Prometheus metrics of the runtime, including what canary analysis reads.

The payment-success ratio a canary ``AnalysisTemplate`` computes::

    sum(rate(payment_requests_total{outcome="success"}[2m]))
      / sum(rate(payment_requests_total{outcome=~"success|declined|error"}[2m]))

``outcome`` is ``success`` (accepted), ``declined`` (the payment failed at Stripe),
``rejected`` (a client error: bad input, auth, idempotency conflict — not the
service's fault, so excluded from the ratio) or ``error`` (a 5xx).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """All runtime metrics, in one registry (one per app, so tests don't collide)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.payment_requests = Counter(
            "payment_requests",
            "Payment API operations by outcome",
            ["operation", "outcome"],
            registry=r,
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stripe_duration = Histogram(
            "stripe_request_duration_seconds",
            "Latency of calls to the Stripe API",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stripe_errors = Counter(
            "stripe_errors", "Failed Stripe API calls", ["operation", "kind"], registry=r
        )
        self.webhook_events = Counter(
            "stripe_webhook_events", "Stripe webhook deliveries", ["type", "result"], registry=r
        )
        self.outbox_lag = Gauge(
            "outbox_lag_seconds", "Age of the oldest unpublished outbox event", registry=r
        )
        self.outbox_pending = Gauge(
            "outbox_pending_events", "Outbox events not yet published", registry=r
        )
        self.outbox_published = Counter(
            "outbox_published_events", "Outbox events published to Kafka", registry=r
        )
        self.outbox_publish_errors = Counter(
            "outbox_publish_errors", "Outbox events Kafka did not acknowledge", registry=r
        )
