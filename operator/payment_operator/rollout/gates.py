"""The gates before a new revision's first pod (``SecretsReady``, ``TopicsReady``), and
``MonitoringReady``, which only informs.

Pure: each gate is decided from the spec, what the cluster serves and the live objects the
reconciler read (passed in as plain dicts), or (topics through the Kafka admin API) the
:class:`~payment_operator.rollout.topics.Report` of this pass's reconcile.  A gate never
claims what the operator did not see: a secret store whose API the cluster does not serve, an
ExternalSecret that has not synced, a KafkaTopic Strimzi has not made Ready, a Kafka cluster
that does not answer, all keep the gate closed with a reason
that says what to install or wait for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from payment_operator.api.v1alpha1 import PaymentService
from payment_operator.rollout.state import Gate
from payment_operator.rollout.topics import Report

SECRETS_READY = "SecretsReady"
TOPICS_READY = "TopicsReady"
#: Only with spec.currencies: the user's rate-table ConfigMap (and key) the pods mount exists.
CURRENCY_RATES_READY = "CurrencyRatesReady"
#: Informs only: monitoring that cannot be created never holds a rollout back.
MONITORING_READY = "MonitoringReady"


def _ready_condition(obj: Mapping[str, Any] | None) -> tuple[bool, str]:
    """(Ready, message) from an object's ``status.conditions``."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True", str(cond.get("message") or cond.get("reason")
                                                     or "")
    return False, "no Ready condition yet"


def _uses_store(ps: PaymentService) -> bool:
    spec = ps.spec
    refs = [spec.stripe.secret_key, spec.database.url]
    if spec.stripe.webhook_secret is not None:
        refs.append(spec.stripe.webhook_secret)
    return any(ref.store_object is not None for ref in refs)


def secrets_gate(
    ps: PaymentService,
    *,
    api_served: bool,
    binding: Mapping[str, Any] | None,
) -> Gate:
    """Whether the secrets the pods read exist.

    ``binding`` is the ExternalSecret (backend external-secrets) or SecretProviderClass
    (backend csi) the operator applied, as live; ``api_served`` whether the cluster serves
    that kind at all.
    """
    store = ps.spec.secret_store
    if store is None:
        return Gate(SECRETS_READY, True, "SecretRefs",
                    "pods read the Secrets named by secretRef; the operator cannot read "
                    "Secrets, so it does not check them")
    if store.backend == "external-secrets":
        if not api_served:
            return Gate(SECRETS_READY, False, "ExternalSecretsAPIMissing",
                        "the cluster serves no ExternalSecret API: install the External "
                        "Secrets Operator")
        if binding is None:
            return Gate(SECRETS_READY, False, "Pending", "the ExternalSecret does not exist yet")
        ok, text = _ready_condition(binding)
        if ok:
            return Gate(SECRETS_READY, True, "Synced", f"ExternalSecret synced: {text}")
        return Gate(SECRETS_READY, False, "NotSynced", f"ExternalSecret not synced: {text}")
    if not api_served:
        return Gate(SECRETS_READY, False, "SecretsStoreCSIAPIMissing",
                    "the cluster serves no SecretProviderClass API: install the Secrets "
                    "Store CSI driver and its provider")
    if binding is None:
        return Gate(SECRETS_READY, False, "Pending", "the SecretProviderClass does not exist yet")
    what = "mounted by the CSI driver when pods start"
    if _uses_store(ps):
        what += " (and synced to a Secret for env vars)"
    return Gate(SECRETS_READY, True, "ProviderClassPresent", f"SecretProviderClass present; "
                f"secrets are {what}")


def topics_gate(
    ps: PaymentService,
    *,
    api_served: bool,
    topics: Sequence[Mapping[str, Any]],
    expected: int,
    admin: Report | None = None,
    watched: bool = True,
) -> Gate:
    """Whether the Kafka topics exist: Strimzi made every KafkaTopic Ready, or (provisioner
    admin) the operator's own reconcile of them through the admin API succeeded.

    ``topics`` are the live KafkaTopics the operator applied (in the PaymentService's
    namespace or, owned by label, in the Strimzi cluster's); ``expected`` how many it wants;
    ``admin`` what this pass's reconcile through the admin API came to; ``watched`` whether
    the operator sees the namespace the KafkaTopics belong in.
    """
    kafka = ps.spec.kafka
    if kafka is None or not kafka.topics:
        return Gate(TOPICS_READY, True, "NoTopics", "the service declares no Kafka topics")
    if kafka.topic_provisioner == "none":
        return Gate(TOPICS_READY, True, "NotManaged",
                    "topicProvisioner none: the topics must exist already (not checked)")
    if kafka.topic_provisioner == "admin":
        return admin_topics_gate(admin)
    if not api_served:
        return Gate(TOPICS_READY, False, "StrimziAPIMissing",
                    "the cluster serves no KafkaTopic API: install Strimzi")
    assert kafka.strimzi is not None  # the CRD requires it with topicProvisioner strimzi
    if not watched:
        return Gate(TOPICS_READY, False, "NamespaceNotWatched",
                    f"the operator does not watch namespace {kafka.strimzi.namespace}: add it to "
                    "its namespaces (watchNamespaces) to create the KafkaTopics there")
    waiting = []
    for topic in topics:
        ok, text = _ready_condition(topic)
        if not ok:
            waiting.append(f"{topic['metadata']['name']}: {text}")
    missing = expected - len(topics)
    if missing > 0:
        waiting.append(f"{missing} KafkaTopic(s) not created yet")
    if waiting:
        return Gate(TOPICS_READY, False, "NotReady", "; ".join(waiting))
    return Gate(TOPICS_READY, True, "Ready", f"{expected} KafkaTopic(s) Ready")


def monitoring_condition(
    ps: PaymentService, *, api_served: bool, children: Sequence[str]
) -> Gate | None:
    """Whether the ServiceMonitor and PrometheusRule asked for exist (None: none asked for).

    ``children`` are the kinds of the monitoring objects the operator applied and saw live.
    This condition informs: it degrades only itself, never the rollout.
    """
    monitoring = ps.spec.monitoring
    if monitoring is None or not monitoring.service_monitor:
        return None
    if not api_served:
        return Gate(MONITORING_READY, False, "PrometheusOperatorAPIMissing",
                    "the cluster serves no monitoring.coreos.com/v1 API: install the Prometheus "
                    "Operator's CRDs to get the ServiceMonitor and PrometheusRule")
    missing = sorted({"ServiceMonitor", "PrometheusRule"} - set(children))
    if missing:
        return Gate(MONITORING_READY, False, "Pending", f"not created yet: {', '.join(missing)}")
    return Gate(MONITORING_READY, True, "Created", "ServiceMonitor and PrometheusRule exist")


def admin_topics_gate(report: Report | None) -> Gate:
    """``TopicsReady`` from a reconcile through the Kafka admin API.

    Closed while the cluster does not answer (``KafkaUnreachable``: the next pass tries
    again), when the spec asks for fewer partitions than a topic has
    (``PartitionDecreaseRefused``, until the spec is fixed) and when the cluster refused a
    change (``TopicChangeRefused``, with its error); open once every topic is as specified.
    """
    if report is None:
        return Gate(TOPICS_READY, False, "Pending",
                    "the topics have not been reconciled through the Kafka admin API yet")
    done = "; ".join(report.done)
    also = f" (this pass {done})" if done else ""
    if report.unreachable:
        return Gate(TOPICS_READY, False, "KafkaUnreachable",
                    f"Kafka at {report.bootstrap} did not answer: {report.unreachable}; "
                    f"tried again on the next pass{also}")
    refused = [r.message for r in report.plan.refused] if report.plan is not None else []
    if refused:
        return Gate(TOPICS_READY, False, "PartitionDecreaseRefused",
                    "; ".join([*refused, *report.failures]) + also)
    if report.failures:
        return Gate(TOPICS_READY, False, "TopicChangeRefused",
                    f"Kafka at {report.bootstrap} refused: {'; '.join(report.failures)}{also}")
    text = f"{report.wanted} topic(s) as specified on {report.bootstrap}"
    if done:
        text += f" ({done})"
    if report.plan is not None and report.plan.notes:
        text += "; " + "; ".join(report.plan.notes)
    return Gate(TOPICS_READY, True, "Ready", text)


def currency_rates_gate(
    ps: PaymentService, config_map: Mapping[str, Any] | None
) -> Gate | None:
    """Whether the rate table the pods mount exists (None: no reporting currency).

    ``config_map`` is the user's ConfigMap named by spec.currencies.ratesConfigMap, as the
    operator read it (None: it does not exist). A pod whose ConfigMap volume is missing never
    starts (the kubelet retries the mount; the container waits in ContainerCreating, which no
    container status calls stuck), so the gate says so instead of a silent deadline.
    """
    currencies = ps.spec.currencies
    if currencies is None or currencies.rates_config_map is None:
        return None
    ref = currencies.rates_config_map
    if config_map is None:
        return Gate(CURRENCY_RATES_READY, False, "ConfigMapMissing",
                    f"ConfigMap {ref.name} (the rate table of spec.currencies) does not exist: "
                    "pods mounting it cannot start")
    if ref.key not in (config_map.get("data") or {}):
        return Gate(CURRENCY_RATES_READY, False, "KeyMissing",
                    f"ConfigMap {ref.name} has no key {ref.key} (the rate table of "
                    "spec.currencies): pods mounting it cannot start")
    return Gate(CURRENCY_RATES_READY, True, "Present",
                f"rate table {ref.name}/{ref.key} present; the runtime validates it at start")
