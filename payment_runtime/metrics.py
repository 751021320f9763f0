"""Prometheus metrics of the runtime, including what canary analysis reads.

The payment-success ratio a canary ``AnalysisTemplate`` computes::

    sum(rate(payment_requests_total{outcome="success"}[2m]))
      / sum(rate(payment_requests_total{outcome=~"success|declined|error"}[2m]))

``outcome`` is ``success`` (accepted), ``declined`` (the payment failed at Stripe),
``rejected`` (a client error: bad input, auth, idempotency conflict, a rate limit's 429 —
not the service's fault, so excluded from the ratio), ``refused`` (a velocity limit
stopped the payment before Stripe: the client's or customer's behaviour, not the service's
fault, so excluded from the ratio too) or ``error`` (a 5xx).

Every series is split by revision: ``/metrics`` serves :func:`labelled`, which adds
``revision="<PAYMENT_REVISION>"`` to each sample (the operator sets that variable from the
pod's ``paydeck.dev/revision`` label).  The canary and the stable revision are told apart by
that label alone; which one is the canary is the operator's knowledge, not the pod's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

#: Every ``outcome`` of ``payment_requests_total`` (see the module docstring).
PAYMENT_OUTCOMES = ("success", "declined", "rejected", "refused", "error")
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
        # Known label values start at 0, so a rate or increase over a window that saw the
        # series appear counts its first payments too (and no traffic reads as 0, not absent).
        for outcome in PAYMENT_OUTCOMES:
            self.payment_requests.labels("create", outcome)
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
        # Amounts of payment creations in the reporting currency (PAYMENT_REPORTING_CURRENCY),
        # in its major units, by the outcome label above; never the charged amount itself.
        self.payment_volume = Counter(
            "payment_volume_reporting",
            "Amounts of payment creations converted to the reporting currency (major units)",
            ["outcome", "currency"],
            registry=r,
        )
        self.payment_volume_unconverted = Counter(
            "payment_volume_unconverted",
            "Payment creations left out of the reporting volume: no rate for their currency",
            ["currency"],
            registry=r,
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
        self.velocity_refusals = Counter(
            "velocity_refusals", "Payments refused by a velocity limit", ["scope"], registry=r
        )
        self.risk_check_failures = Counter(
            "risk_check_failures",
            "Risk checks that could not reach Redis (failure_mode: let through or refused)",
            ["check", "failure_mode"],
            registry=r,
        )


#: The label that names the revision of the process that exported a series.
REVISION_LABEL = "revision"


class _Labelled(Collector):
    """Every sample of ``source`` with ``labels`` added (a sample's own labels win)."""

    def __init__(self, source: CollectorRegistry, labels: Mapping[str, str]) -> None:
        self.source = source
        self.labels = dict(labels)

    def collect(self) -> Iterator[Metric]:
        for family in self.source.collect():
            family.samples = [
                s._replace(labels={**self.labels, **s.labels}) for s in family.samples
            ]
            yield family


def labelled(registry: CollectorRegistry, revision: str | None) -> CollectorRegistry:
    """What ``/metrics`` serves: ``registry`` with ``revision`` on every sample (if given)."""
    if not revision:
        return registry
    view = CollectorRegistry(auto_describe=False)
    view.register(_Labelled(registry, {REVISION_LABEL: revision}))
    return view
