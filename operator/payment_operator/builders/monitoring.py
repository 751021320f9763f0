"""Prometheus Operator children: a ServiceMonitor scraping the runtime and its alert rules.

Both exist only when spec.monitoring.serviceMonitor is true and the cluster serves
monitoring.coreos.com/v1.  They carry spec.monitoring.labels besides the child labels so
that Prometheus' serviceMonitorSelector and ruleSelector pick them up.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from payment_operator.api.v1alpha1 import PaymentService, parse_duration
from payment_operator.builders import meta

#: The group/version of both kinds (the one discovery asks for, too).
API_VERSION = "monitoring.coreos.com/v1"
#: Share of failed payment requests above which the error alert fires.
ERROR_RATIO_THRESHOLD = 0.05


#: The durations the Prometheus Operator's CRDs accept: each unit at most once, largest first.
PROMETHEUS_DURATION = re.compile(
    r"0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?"
)


def prometheus_duration(value: str) -> str:
    """``value`` as the ServiceMonitor schema accepts it.

    The PaymentService allows units in any order and repeated (``30s1m``), which the
    upstream CRD rejects; such a value is rewritten as ``1m30s``, any other kept as written.
    """
    if PROMETHEUS_DURATION.fullmatch(value):
        return value
    ms = parse_duration(value) // timedelta(milliseconds=1)
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _enabled(ps: PaymentService, ctx: meta.Context) -> bool:
    monitoring = ps.spec.monitoring
    return (
        monitoring is not None
        and monitoring.service_monitor
        and ctx.capabilities.prometheus_operator
    )


def _labels(ps: PaymentService) -> dict[str, str]:
    monitoring = ps.spec.monitoring
    return dict(monitoring.labels or {}) if monitoring is not None else {}


def service_monitor(ps: PaymentService, ctx: meta.Context) -> dict[str, Any] | None:
    """ServiceMonitor ``<name>``: the Service's metrics port at spec.monitoring's path."""
    monitoring = ps.spec.monitoring
    if monitoring is None or not _enabled(ps, ctx):
        return None
    return {
        "apiVersion": API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": meta.object_meta(ps, meta.name(ps), extra_labels=_labels(ps)),
        "spec": {
            "selector": {"matchLabels": meta.child_labels(ps)},
            "namespaceSelector": {"matchNames": [meta.namespace(ps)]},
            "endpoints": [
                {
                    "port": meta.METRICS_PORT_NAME,
                    "path": monitoring.path,
                    "interval": prometheus_duration(monitoring.interval),
                }
            ],
        },
    }


def prometheus_rule(ps: PaymentService, ctx: meta.Context) -> dict[str, Any] | None:
    """PrometheusRule ``<name>``: high payment error ratio, pods not ready."""
    if not _enabled(ps, ctx):
        return None
    ns, name = meta.namespace(ps), meta.name(ps)
    requests = f'payment_requests_total{{namespace="{ns}",service="{name}"'
    error_ratio = (
        f'sum(rate({requests},outcome="error"}}[5m]))'
        f" / sum(rate({requests}}}[5m])) > {ERROR_RATIO_THRESHOLD}"
    )
    # One Deployment per revision, <name>-<10 hex digits>: sum over all of them.
    deployment = f'namespace="{ns}",deployment=~"{name}-[0-9a-f]{{10}}"'
    not_ready = (
        f"sum(kube_deployment_spec_replicas{{{deployment}}})"
        f" - sum(kube_deployment_status_replicas_available{{{deployment}}}) > 0"
    )
    common = {"namespace": ns, "paymentservice": name}
    return {
        "apiVersion": API_VERSION,
        "kind": "PrometheusRule",
        "metadata": meta.object_meta(ps, name, extra_labels=_labels(ps)),
        "spec": {
            "groups": [
                {
                    "name": f"paydeck.{ns}.{name}",
                    "rules": [
                        {
                            "alert": "PaymentServiceHighErrorRatio",
                            "expr": error_ratio,
                            "for": "5m",
                            "labels": {"severity": "critical", **common},
                            "annotations": {
                                "summary": f"More than 5% of payment requests of {ns}/{name} fail",
                            },
                        },
                        {
                            "alert": "PaymentServicePodsNotReady",
                            "expr": not_ready,
                            "for": "10m",
                            "labels": {"severity": "warning", **common},
                            "annotations": {
                                "summary": f"Pods of {ns}/{name} are not ready for 10 minutes",
                            },
                        },
                    ],
                }
            ]
        },
    }
