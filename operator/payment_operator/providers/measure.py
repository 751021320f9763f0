"""Taking one measurement of a metric, or of all the metrics of an analysis, without raising."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from payment_operator.api import v1alpha1 as api
from payment_operator.providers import builtin, prometheus, web
from payment_operator.providers.errors import ProviderError, clip
from payment_operator.rollout.analysis import MetricResult, metric_names


def variables(*, revision: str, stable_revision: str, namespace: str, name: str) -> dict[str, str]:
    """The template variables of a PaymentService's analysis (see ``TEMPLATE_VARIABLES``)."""
    return {
        "revision": revision,
        "stable_revision": stable_revision,
        "namespace": namespace,
        "name": name,
    }


def measure(metric: api.Metric, variables: Mapping[str, str]) -> MetricResult:
    """Measure ``metric`` once; every failure is a result with ``error`` set, never a raise."""
    try:
        if metric.prometheus is not None:
            value = prometheus.query(metric.prometheus, variables)
        elif metric.web is not None:
            value = web.fetch(metric.web, variables)
        else:
            return MetricResult(metric.name, None, "the metric has no provider")
    except ProviderError as error:
        return MetricResult(metric.name, None, str(error))
    except Exception as error:  # a provider bug must not break the reconcile
        return MetricResult(metric.name, None, clip(f"{type(error).__name__}: {error}"))
    return MetricResult(metric.name, value)


def measure_all(analysis: api.Analysis, variables: Mapping[str, str]) -> list[MetricResult]:
    """One result per metric, in the order of ``analysis.metrics``, measured concurrently
    (so a round lasts about as long as its slowest metric); the built-in analysis's two
    metrics when ``builtin`` is set (:mod:`.builtin`)."""
    if analysis.builtin is not None:
        try:
            return builtin.measure(analysis, variables)
        except Exception as error:  # a provider bug must not break the reconcile
            text = clip(f"{type(error).__name__}: {error}")
            return [MetricResult(n, None, text) for n in metric_names(analysis)]
    metrics = analysis.metrics or []
    if len(metrics) == 1:
        return [measure(metrics[0], variables)]
    with ThreadPoolExecutor(max_workers=len(metrics)) as pool:
        return list(pool.map(lambda m: measure(m, variables), metrics))
