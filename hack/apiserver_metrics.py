"""Count write requests from the API server's own ``apiserver_request_total`` metric."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "CREATE", "UPDATE"})
OPERATOR_RESOURCES = frozenset({
    "paymentservices", "deployments", "services", "configmaps", "serviceaccounts",
    "networkpolicies", "poddisruptionbudgets", "ingresses", "horizontalpodautoscalers",
    "servicemonitors", "prometheusrules", "externalsecrets", "secretstores",
    "secretproviderclasses", "kafkatopics",
})
_LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>[0-9.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def operator_writes(metrics_text: str) -> Counter[str]:
    """Write requests on the operator's kinds, by ``verb resource[/subresource]``.

    Status subresources written by Kubernetes' own controllers (Deployment, HPA, PDB status)
    are left out; the PaymentService status is the operator's and counts.
    """
    counts: Counter[str] = Counter()
    for line in metrics_text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        if labels.get("verb") not in WRITE_VERBS or labels.get("dry_run"):
            continue
        resource, sub = labels.get("resource", ""), labels.get("subresource", "")
        if resource not in OPERATOR_RESOURCES:
            continue
        if sub and not (resource == "paymentservices" and sub == "status"):
            continue
        key = f"{labels['verb']} {resource}{'/' + sub if sub else ''}"
        counts[key] += int(float(match["value"]))
    return counts


def writes_between(read_metrics: Callable[[], str], action: Callable[[], object]) -> Counter[str]:
    """The operator-kind writes the API server served while ``action`` ran."""
    before = operator_writes(read_metrics())
    action()
    after = operator_writes(read_metrics())
    after.subtract(before)
    return +after
