"""The Grafana dashboard ConfigMap and the reporting-currency wiring (spec.currencies)."""

from __future__ import annotations

import json
from typing import Any

import promql_parser
import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard as DashboardModel
from payment_operator.api import PaymentService, parse
from payment_operator.builders import Context, build_all, migrations, workload
from payment_operator.builders.meta import owner_reference
from payment_operator.rollout import gates

from payment_runtime.metrics import Metrics
from payment_runtime.settings import Settings
from tests.unit.builders.cases import ALL_CAPABILITIES, minimal_body

pytestmark = pytest.mark.unit
CURRENCIES = {"reporting": "EUR", "ratesConfigMap": {"name": "fx", "key": "rates.json"}}


def ps(**spec: Any) -> PaymentService:
    return parse(minimal_body(**spec))


def _dashboards(p: PaymentService) -> list[dict[str, Any]]:
    children = build_all(p, Context(capabilities=ALL_CAPABILITIES))
    return [c for c in children if c["metadata"]["name"] == "pay-dashboard"]


def test_dashboard_only_when_asked_for_labelled_for_the_sidecar_and_owned():
    assert _dashboards(ps()) == []
    assert _dashboards(ps(monitoring={"serviceMonitor": True})) == []
    p = ps(monitoring={"dashboard": True})
    (cm,) = _dashboards(p)
    assert cm["kind"] == "ConfigMap" and cm["apiVersion"] == "v1"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["ownerReferences"] == [owner_reference(p)]
    (key,) = cm["data"]
    assert key == "pay.json"


def _model(p: PaymentService) -> dict[str, Any]:
    (cm,) = _dashboards(p)
    return json.loads(cm["data"]["pay.json"])  # type: ignore[no-any-return]


def test_the_dashboard_json_is_grafanas_model():
    document = _model(ps(monitoring={"dashboard": True}))
    register_default_plugins()
    decoded = DashboardModel.from_json(document)  # the SDK's typed model reads it back
    back = json.loads(json.dumps(decoded, cls=JSONEncoder))
    for panel in back["panels"]:  # the model's one default the builders leave out
        assert panel["fieldConfig"]["defaults"].pop("custom", {}) == {}
    assert back == document
    titles = [panel["title"] for panel in document["panels"]]
    assert "Payment success ratio by revision" in titles
    assert "Payment volume in the reporting currency" in titles
    assert [v["name"] for v in document["templating"]["list"]] == ["datasource"]


def _exprs(document: dict[str, Any]) -> list[str]:
    return [t["expr"] for panel in document["panels"] for t in panel.get("targets", [])]


def _selectors(node: Any) -> list[Any]:
    """Every vector selector of a parsed PromQL expression."""
    if isinstance(node, promql_parser.VectorSelector):
        return [node]
    if isinstance(node, promql_parser.MatrixSelector):
        return [node.vector_selector]
    children: list[Any] = []
    for attr in ("lhs", "rhs", "expr", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, str | float | int):
            children.append(child)
    children.extend(getattr(node, "args", None) or [])
    return [s for child in children for s in _selectors(child)]


def exported_names(metrics: Metrics) -> set[str]:
    """The series names the runtime's registry exposes (counters as ``_total``, histograms
    as ``_bucket``/``_sum``/``_count``), from its metric families."""
    names: set[str] = set()
    for family in metrics.registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def test_every_query_names_only_metrics_the_runtime_exports_and_selects_this_service():
    document = _model(ps(monitoring={"dashboard": True}))
    exported = exported_names(Metrics())
    assert {"payment_requests_total", "http_request_duration_seconds_bucket",
            "payment_volume_reporting_total", "stripe_errors_total"} <= exported
    exprs = _exprs(document)
    assert len(exprs) == 8  # 7 panels, the latency one with p50 and p99
    for expr in exprs:
        parsed = promql_parser.parse(expr.replace("$__rate_interval", "5m"))
        selectors = _selectors(parsed)
        assert selectors, expr
        for selector in selectors:
            assert selector.name in exported, (selector.name, expr)
            matchers = {(m.name, m.value) for m in selector.matchers.matchers}
            assert {("namespace", "payments"), ("service", "pay")} <= matchers, expr


def test_exported_names_sees_a_missing_metric():
    exported = exported_names(Metrics())
    assert "payment_requests" not in exported  # the counter's series is _total
    assert "http_request_duration_seconds" not in exported


def test_reporting_currency_settings_volume_and_mount():
    p = ps(currencies=CURRENCIES)
    data = workload.config_data(p)
    assert data["PAYMENT_REPORTING_CURRENCY"] == "EUR"
    assert data["PAYMENT_FX_RATES_FILE"] == "/etc/paydeck/fx-rates/rates.json"
    # The runtime accepts exactly what the ConfigMap says.
    settings = Settings(reporting_currency="EUR", fx_rates_file=data["PAYMENT_FX_RATES_FILE"])
    assert settings.reporting_currency == "EUR"
    pod = workload.pod_template(p)["spec"]
    assert {"name": "fx-rates", "configMap": {
        "name": "fx", "items": [{"key": "rates.json", "path": "rates.json"}],
        "defaultMode": 0o444}} in pod["volumes"]
    assert {"name": "fx-rates", "mountPath": "/etc/paydeck/fx-rates", "readOnly": True} in (
        pod["containers"][0]["volumeMounts"])
    job_pod = migrations.migration_job(p)["spec"]["template"]["spec"]
    assert "fx-rates" not in json.dumps(job_pod)  # the migration never converts anything
    assert "PAYMENT_REPORTING_CURRENCY" not in workload.config_data(ps())


def test_changing_the_rates_configmap_reference_is_a_new_revision_not_its_content():
    a, b = ps(currencies=CURRENCIES), ps(currencies={**CURRENCIES, "reporting": "USD"})
    assert workload.revision(a) != workload.revision(ps())
    assert workload.revision(a) != workload.revision(b)


@pytest.mark.parametrize(
    ("currencies", "error"),
    [
        ({"reporting": "EUR"}, "reporting and ratesConfigMap go together"),
        ({"ratesConfigMap": {"name": "fx", "key": "k"}}, "reporting and ratesConfigMap"),
        ({**CURRENCIES, "reporting": "eur"}, "pattern"),
        ({**CURRENCIES, "reporting": "EURO"}, "reporting"),
    ],
)
def test_currencies_are_both_or_neither_and_iso_shaped(currencies, error):
    with pytest.raises(ValueError, match=error):
        ps(currencies=currencies)


def test_currency_rates_gate():
    assert gates.currency_rates_gate(ps(), None) is None
    p = ps(currencies=CURRENCIES)
    missing = gates.currency_rates_gate(p, None)
    assert missing is not None and not missing.open and missing.reason == "ConfigMapMissing"
    assert "fx" in missing.message
    no_key = gates.currency_rates_gate(p, {"data": {"other": "{}"}})
    assert no_key is not None and (no_key.open, no_key.reason) == (False, "KeyMissing")
    ok = gates.currency_rates_gate(p, {"data": {"rates.json": "{}"}})
    assert ok is not None and (ok.open, ok.reason) == (True, "Present")
