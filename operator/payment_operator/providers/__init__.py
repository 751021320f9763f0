"""Measuring the canary's metrics: the I/O behind the analysis (HTTP and templates, no Kopf).

:func:`measure` renders a metric's query or URL with the template variables, asks the
metric's provider (:mod:`.prometheus` or :mod:`.web`) and returns a
:class:`~payment_operator.rollout.analysis.MetricResult`.  It never raises: every failure
(timeout, connection refused, HTTP error, bad JSON, a JSON path that matches nothing, a value
that is not a number) becomes a result with a short ``error``, for the pure judge in
:mod:`payment_operator.rollout.analysis` to count.
"""

from payment_operator.providers.errors import ProviderError
from payment_operator.providers.measure import measure, measure_all, variables
from payment_operator.providers.templates import render

__all__ = ["ProviderError", "measure", "measure_all", "render", "variables"]
