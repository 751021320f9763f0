"""The Prometheus provider: one instant query through the HTTP API.

``GET {address}/api/v1/query?query=...``; the answer must be a vector with at most one
sample (none is no data) or a scalar.  Prometheus writes values as strings, ``NaN``,
``+Inf`` and ``-Inf`` included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from payment_operator.api import v1alpha1 as api
from payment_operator.providers import http
from payment_operator.providers.errors import ProviderError, to_number
from payment_operator.providers.templates import render


def query(spec: api.PrometheusQuery, variables: Mapping[str, str]) -> float | None:
    """The value of the query, None for an empty vector; :class:`ProviderError` otherwise."""
    promql = render(spec.query, variables)
    response = http.get(
        f"{spec.address.rstrip('/')}/api/v1/query",
        params={"query": promql},
        timeout=spec.timeout_seconds,
    )
    if not response.ok:
        raise ProviderError(f"HTTP {response.status}: {_error_text(response)}")
    return value_of(response.json())


def value_of(body: Any) -> float | None:
    """The number in a query API answer (see the module docstring for the accepted shapes)."""
    if not isinstance(body, dict):
        raise ProviderError("unexpected response: not a JSON object")
    if body.get("status") != "success":
        raise ProviderError(f"query failed: {_api_error(body)}")
    data = body.get("data")
    if not isinstance(data, dict):
        raise ProviderError("unexpected response: no data")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "vector" and isinstance(result, list):
        if not result:
            return None
        if len(result) > 1:
            raise ProviderError(f"query returned {len(result)} series, expected 1")
        sample = result[0].get("value") if isinstance(result[0], dict) else None
        return _sample_value(sample)
    if kind == "scalar":
        return _sample_value(result)
    raise ProviderError(f"query returned a {kind}, expected a vector or a scalar")


def _sample_value(sample: Any) -> float:
    if not isinstance(sample, list) or len(sample) != 2:
        raise ProviderError("unexpected response: a sample is not [time, value]")
    return to_number(sample[1], "the sample value")


def _api_error(body: dict[str, Any]) -> str:
    kind, message = body.get("errorType"), body.get("error")
    if kind and message:
        return f"{kind}: {message}"
    return str(message or kind or "no error given")


def _error_text(response: http.Response) -> str:
    try:
        body = response.json()
    except ProviderError:
        return response.text() or "no body"
    if isinstance(body, dict) and (body.get("error") or body.get("errorType")):
        return _api_error(body)
    return response.text() or "no body"
