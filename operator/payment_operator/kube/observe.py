"""Read what the canary engine decides from: each revision's Deployment, the migration Job,
the live secret-store binding and KafkaTopics (or the report of the topics' reconcile through
the Kafka admin API), and the user's command in status.

Only objects whose controller owner is this PaymentService count: a Deployment that merely
carries our labels is not one of our revisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from payment_operator import builders
from payment_operator.api.v1alpha1 import PaymentService
from payment_operator.builders import migrations
from payment_operator.kube import resources
from payment_operator.kube.cache import ChildCache, read
from payment_operator.kube.client import Kube, Obj
from payment_operator.rollout import gates, topics
from payment_operator.rollout.state import Command, Gate, Job, Workload, parse_time

DEPLOYMENT = resources.by_kind("apps/v1", "Deployment")
JOB = resources.by_kind("batch/v1", "Job")
CONFIG_MAP = resources.by_kind("v1", "ConfigMap")
POD = resources.Resource("v1", "Pod", "pods")
#: Container waiting reasons that do not go away by waiting.
STUCK_REASONS = frozenset({
    "CreateContainerConfigError", "CreateContainerError", "ErrImagePull", "ImagePullBackOff",
    "InvalidImageName", "CrashLoopBackOff", "RunContainerError",
})


@dataclass(frozen=True)
class Revisions:
    """The revisions' Deployments: their counts, and their pod templates as they run."""

    workloads: dict[str, Workload] = field(default_factory=dict)
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """Whether ``uid`` is the controller owner of ``obj``."""
    return any(o.get("uid") == uid and o.get("controller")
               for o in obj.get("metadata", {}).get("ownerReferences") or [])


def revisions(kube: Kube, ps: PaymentService, uid: str) -> Revisions:
    """Every revision's Deployment of this PaymentService, with the first stuck container of
    each (its pods are listed only when some pod is not ready)."""
    out = Revisions()
    namespace = ps.metadata.namespace
    for obj in kube.list_objects(DEPLOYMENT, namespace, builders.selector(ps)):
        meta = obj["metadata"]
        rev = (meta.get("labels") or {}).get(builders.meta.LABEL_REVISION)
        if not rev or not owned_by(obj, uid) or meta.get("deletionTimestamp"):
            continue
        # The status fields read here are cache.STATUS_READ["Deployment"]: their changes
        # trigger a pass.
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        template = spec.get("template") or {}
        containers = (template.get("spec") or {}).get("containers") or [{}]
        out.workloads[rev] = Workload(
            revision=rev,
            replicas=int(spec.get("replicas", 0)),
            pods=int(status.get("replicas", 0)),
            ready=int(status.get("readyReplicas", 0)),
            image=str(containers[0].get("image", "")),
            created_at=parse_time(meta.get("creationTimestamp")),
        )
        out.templates[rev] = template
    # A stuck container (CrashLoopBackOff, ImagePullBackOff ...) is in a pod that is not
    # ready: while every revision's pods are all ready there is none to look for.
    if all(w.pods == w.ready for w in out.workloads.values()):
        return out
    for rev, (reason, text) in pod_problems(kube, ps).items():
        if rev in out.workloads:
            out.workloads[rev] = replace(out.workloads[rev], problem=text, problem_reason=reason)
    return out


def pod_problems(kube: Kube, ps: PaymentService) -> dict[str, tuple[str, str]]:
    """The first stuck container of each revision: (reason, "pod p: reason: message")."""
    found: dict[str, tuple[str, str]] = {}
    for pod in kube.list_objects(POD, ps.metadata.namespace, builders.selector(ps)):
        rev = (pod["metadata"].get("labels") or {}).get(builders.meta.LABEL_REVISION)
        if not rev or rev in found or pod["metadata"].get("deletionTimestamp"):
            continue
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting") or {}
            reason = str(waiting.get("reason") or "")
            if reason in STUCK_REASONS:
                text = f"pod {pod['metadata']['name']}: {reason}"
                if waiting.get("message"):
                    text += f": {str(waiting['message'])[:512]}"
                found[rev] = (reason, text)
                break
    return found


def job_state(obj: Obj | None) -> Job | None:
    """A Job's phase from its conditions (Complete / Failed), else Running (conditions are
    cache.STATUS_READ["Job"]: their changes trigger a pass)."""
    if obj is None:
        return None
    name = obj["metadata"]["name"]
    terminating = bool(obj["metadata"].get("deletionTimestamp"))
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return Job(name, "Succeeded", terminating=terminating)
        if cond.get("type") == "Failed":
            return Job(name, "Failed", str(cond.get("reason") or "Failed"),
                       str(cond.get("message") or ""), terminating=terminating)
    return Job(name, "Running", terminating=terminating)


def migration_job(
    kube: Kube, ps: PaymentService, uid: str, rev: str, cache: ChildCache | None = None
) -> Job | None:
    """The migration Job of revision ``rev``, if it exists and is ours."""
    obj = read(kube, JOB, ps.metadata.namespace, migrations.job_name(ps, rev), cache)
    if obj is None or not owned_by(obj, uid):
        return None
    return job_state(obj)


def rates_config_map(kube: Kube, ps: PaymentService) -> Obj | None:
    """The user's rate-table ConfigMap of spec.currencies (read, never written), if any.

    The children's cache (:mod:`payment_operator.kube.cache`) holds only the ConfigMaps the
    operator manages: this read stays a GET, or the user's would always look missing.
    """
    currencies = ps.spec.currencies
    if currencies is None or currencies.rates_config_map is None:
        return None
    return kube.get(CONFIG_MAP, ps.metadata.namespace, currencies.rates_config_map.name)


def gate_states(
    ps: PaymentService, capabilities: builders.Capabilities, live: Mapping[tuple[str, str], Obj],
    admin_topics: topics.Report | None = None, watched: bool = True,
    rates: Obj | None = None,
) -> tuple[Gate, ...]:
    """SecretsReady and TopicsReady from the children just applied (``live`` by kind, name);
    with topicProvisioner admin, TopicsReady from this pass's reconcile of the topics through
    the Kafka admin API (``admin_topics``); ``watched``: the operator sees the namespace of
    the KafkaTopics."""
    store = ps.spec.secret_store
    name = builders.meta.name(ps)
    if store is not None and store.backend == "csi":
        secrets = gates.secrets_gate(ps, api_served=capabilities.secrets_store_csi,
                                     binding=live.get(("SecretProviderClass", name)))
    else:
        secrets = gates.secrets_gate(ps, api_served=capabilities.external_secrets,
                                     binding=live.get(("ExternalSecret", name)))
    kafka = ps.spec.kafka
    expected = len(kafka.topics or ()) if kafka is not None else 0
    kafka_topics = [obj for (kind, _), obj in live.items() if kind == "KafkaTopic"]
    topic_gate = gates.topics_gate(ps, api_served=capabilities.strimzi, topics=kafka_topics,
                                   expected=expected, admin=admin_topics, watched=watched)
    rates_gate = gates.currency_rates_gate(ps, rates)
    return (secrets, topic_gate) if rates_gate is None else (secrets, topic_gate, rates_gate)


def informing(
    ps: PaymentService, capabilities: builders.Capabilities, live: Mapping[tuple[str, str], Obj]
) -> tuple[Gate, ...]:
    """Conditions that inform without gating the rollout (MonitoringReady)."""
    found = gates.monitoring_condition(
        ps, api_served=capabilities.prometheus_operator,
        children=[kind for kind, _ in live if kind in ("ServiceMonitor", "PrometheusRule")])
    return (found,) if found is not None else ()


def command(status: Mapping[str, Any] | None) -> Command | None:
    """The user's latest command from ``status.command``, if well-formed."""
    raw = (status or {}).get("command") or {}
    when = parse_time(raw.get("requestedAt")) if isinstance(raw, Mapping) else None
    if not raw or when is None or not raw.get("action"):
        return None
    return Command(str(raw["action"]), when, str(raw.get("requestedBy") or ""))
