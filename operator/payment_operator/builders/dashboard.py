"""A Grafana dashboard of the service, as a ConfigMap for the Grafana sidecar.

Exists only with spec.monitoring.dashboard: ConfigMap ``<name>-dashboard``, labelled
``grafana_dashboard: "1"`` (the Grafana Helm chart's default ``sidecar.dashboards.label`` and
``labelValue``), owned by the PaymentService like every child, one key ``<name>.json``. The
sidecar loads ConfigMaps of its own namespace unless ``sidecar.dashboards.searchNamespace``
is ``ALL`` (or lists this namespace).

The model is built with Grafana's typed ``grafana-foundation-sdk`` (its builders produce
the dashboard model of Grafana 11.6); the data source is a ``datasource`` variable of type
prometheus.

Every query selects the service's series by ``namespace`` and ``service``: the labels a scrape
through the operator's ServiceMonitor puts on every target (the Prometheus Operator sets
``namespace`` to the Service's namespace and ``service`` to its name, ``<name>``), besides
``revision`` that the runtime itself adds to every sample. A Prometheus scraping the pods
some other way must produce the same two labels for the dashboard to show anything.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as gm

from payment_operator.api.v1alpha1 import PaymentService
from payment_operator.builders import meta

#: The Grafana Helm chart's default sidecar label (``sidecar.dashboards.label``/``labelValue``).
SIDECAR_LABEL = "grafana_dashboard"
SIDECAR_LABEL_VALUE = "1"
DATASOURCE = gm.DataSourceRef(type_val="prometheus", uid="${datasource}")
#: The payment creation route and method, as the runtime's latency histogram labels them.
PAYMENTS_ROUTE = "/api/v1/payments"


def name(ps: PaymentService) -> str:
    """The dashboard ConfigMap's name."""
    return f"{meta.name(ps)}-dashboard"


def _enabled(ps: PaymentService) -> bool:
    monitoring = ps.spec.monitoring
    return monitoring is not None and monitoring.dashboard


def _query(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)
    return query.datasource(DATASOURCE)


def _timeseries(title: str, unit: str, *queries: prometheus.Dataquery) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).span(12).height(8)
    for query in queries:
        panel = panel.with_target(query)
    return panel


def queries(namespace: str, service: str) -> dict[str, list[str]]:
    """Every panel's PromQL, by panel title (the dashboard's queries, for tests and docs)."""
    sel = f'namespace="{namespace}",service="{service}"'
    created = f'{sel},operation="create"'
    window = "[$__rate_interval]"
    requests = "payment_requests_total"
    latency = (
        f"sum by (revision, le) (rate(http_request_duration_seconds_bucket"
        f'{{{sel},route="{PAYMENTS_ROUTE}",method="POST"}}{window}))'
    )
    return {
        "Payment success ratio by revision": [
            f'sum by (revision) (rate({requests}{{{created},outcome="success"}}{window}))'
            f" / sum by (revision) (rate({requests}"
            f'{{{created},outcome=~"success|declined|error"}}{window}))'
        ],
        "Payment latency (POST /api/v1/payments) by revision": [
            f"histogram_quantile(0.5, {latency})",
            f"histogram_quantile(0.99, {latency})",
        ],
        "Stripe errors": [
            f"sum by (revision, operation, kind) (rate(stripe_errors_total{{{sel}}}{window}))"
        ],
        "Outbox lag": [f"max by (revision) (outbox_lag_seconds{{{sel}}})"],
        "Velocity refusals": [
            f'sum by (revision) (rate({requests}{{{created},outcome="refused"}}{window}))'
        ],
        "Payment volume in the reporting currency": [
            f"sum by (currency, outcome) (rate(payment_volume_reporting_total{{{sel}}}{window}))"
        ],
    }


_LEGENDS = {
    "Payment success ratio by revision": ["{{revision}}"],
    "Payment latency (POST /api/v1/payments) by revision": ["p50 {{revision}}", "p99 {{revision}}"],
    "Stripe errors": ["{{revision}} {{operation}} {{kind}}"],
    "Outbox lag": ["{{revision}}"],
    "Velocity refusals": ["{{revision}}"],
    "Payment volume in the reporting currency": ["{{outcome}} ({{currency}})"],
}
_UNITS = {
    "Payment success ratio by revision": "percentunit",
    "Payment latency (POST /api/v1/payments) by revision": "s",
    "Stripe errors": "reqps",
    "Outbox lag": "s",
    "Velocity refusals": "reqps",
    "Payment volume in the reporting currency": "short",
}


@lru_cache(maxsize=256)
def model(namespace: str, service: str) -> str:
    """The dashboard JSON of one service (cached: a reconcile pass rebuilds every child)."""
    board = (
        gd.Dashboard(f"Paydeck {namespace}/{service}")
        .uid(f"paydeck-{meta.short_hash({'ns': namespace, 'name': service})}")
        .tags(["paydeck", "payments"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(gd.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    board = board.with_panel(
        stat.Panel()
        .title("Payment success ratio (last 5m)")
        .unit("percentunit")
        .datasource(DATASOURCE)
        .span(24)
        .height(4)
        .with_target(
            _query(
                queries(namespace, service)["Payment success ratio by revision"][0].replace(
                    "$__rate_interval", "5m"
                ),
                "{{revision}}",
                "A",
            )
        )
    )
    for title, exprs in queries(namespace, service).items():
        targets = [
            _query(expr, legend, chr(ord("A") + i))
            for i, (expr, legend) in enumerate(zip(exprs, _LEGENDS[title], strict=True))
        ]
        board = board.with_panel(_timeseries(title, _UNITS[title], *targets))
    return json.dumps(board.build(), cls=JSONEncoder, sort_keys=True, indent=1)


def dashboard_config_map(ps: PaymentService) -> dict[str, Any] | None:
    """ConfigMap ``<name>-dashboard`` with the dashboard, or None without monitoring.dashboard."""
    if not _enabled(ps):
        return None
    service = meta.name(ps)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta.object_meta(
            ps, name(ps), extra_labels={SIDECAR_LABEL: SIDECAR_LABEL_VALUE}
        ),
        "data": {f"{service}.json": model(meta.namespace(ps), service)},
    }
