"""The state of one operator process: settings, API client, discovery cache, coalescer,
scheduler, the children's and the PaymentServices' caches, when each object's drift timer
last read afresh, the owners waiting for a pass after a child event, and the Kafka admin
clients (one per bootstrap string, created on first use).

``main()`` builds one :class:`OperatorState` from :class:`~payment_operator.settings.Settings`
at start-up and hands it to :func:`payment_operator.handlers.register`, which binds every Kopf
handler to it.  Nothing here is set at import time, so tests build their own with a fake
client.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from payment_operator import builders
from payment_operator.coalesce import Coalescer
from payment_operator.fresh_reads import FreshReads
from payment_operator.kube.cache import ChildCache
from payment_operator.kube.client import Kube
from payment_operator.kube.discovery import CapabilityCache
from payment_operator.kube.parents import ParentCache
from payment_operator.owners import OwnerQueue
from payment_operator.reconcile import Outcome
from payment_operator.scheduler import Scheduler
from payment_operator.settings import Settings
from payment_operator.topics import AdminClients, Security


@dataclass
class OperatorState:
    """Everything the handlers share, for the lifetime of the process."""

    settings: Settings
    kube: Kube
    capabilities: CapabilityCache
    coalescer: Coalescer[Outcome]
    scheduler: Scheduler
    kafka_admins: AdminClients
    #: The children as their watches last delivered them (filled by child events).
    children: ChildCache = field(default_factory=ChildCache)
    #: The PaymentServices as their watch last delivered them (or our status writes left them).
    parents: ParentCache = field(default_factory=ParentCache)
    #: Which drift-timer passes read every child afresh (the rest read the cache).
    fresh_reads: FreshReads = field(default_factory=lambda: FreshReads(600.0))
    #: Owners of changed children, waiting for their pass (one runner per API thread).
    owners: OwnerQueue = field(default_factory=lambda: OwnerQueue(runners=1))

    @classmethod
    def from_settings(cls, settings: Settings, kube: Kube | None = None) -> OperatorState:
        """The state for ``settings``; the client from the environment unless one is given."""
        return cls(
            settings=settings,
            kube=kube if kube is not None else Kube.from_environment(
                timeout=settings.api_timeout_seconds, connections=settings.thread_workers),
            capabilities=CapabilityCache(ttl=settings.discovery_ttl_seconds),
            coalescer=Coalescer(),
            scheduler=Scheduler(),
            owners=OwnerQueue(runners=settings.thread_workers),
            fresh_reads=FreshReads(settings.drift_fresh_seconds),
            kafka_admins=AdminClients(timeout=settings.kafka_admin_timeout_seconds,
                                      security=kafka_admin_security(settings)),
        )

    def context(self) -> builders.Context:
        """What the builders need to know about the cluster (optional APIs are cached)."""
        return builders.Context(
            capabilities=self.capabilities.get(self.kube),
            gateway_namespace=self.settings.gateway_namespace,
            # Exact names only: with a pattern, children anywhere may be seen (and looked for).
            watch_namespaces=(
                tuple(self.settings.namespaces)
                if all(not any(c in ns for c in "*?[]!,") for ns in self.settings.namespaces)
                else ()
            ),
        )


def kafka_admin_security(settings: Settings) -> Security:
    """How the operator's Kafka admin clients connect, from its ``PAYDECK_KAFKA_ADMIN_*``
    settings (files mounted into the operator's own pod)."""
    return Security(
        protocol=settings.kafka_admin_security_protocol,
        ca_location=settings.kafka_admin_ssl_ca_location,
        certificate_location=settings.kafka_admin_ssl_certificate_location,
        key_location=settings.kafka_admin_ssl_key_location,
        sasl_mechanism=settings.kafka_admin_sasl_mechanism,
        sasl_username_file=settings.kafka_admin_sasl_username_file,
        sasl_password_file=settings.kafka_admin_sasl_password_file,
    )
