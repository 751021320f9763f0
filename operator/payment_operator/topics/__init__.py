"""Kafka topics through the Kafka admin API (``topicProvisioner: admin``): the only Kafka I/O
of the operator.  :mod:`payment_operator.topics.admin` holds the clients and the calls; what
to change is decided by the pure :mod:`payment_operator.rollout.topics`.  Never imports Kopf
or a Kubernetes client."""

from payment_operator.topics.admin import AdminClients, DeleteResult, Security

__all__ = ["AdminClients", "DeleteResult", "Security"]
